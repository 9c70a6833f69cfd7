"""System checks of the portal's own settings (``manage.py check --deploy``)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.core.checks import Tags, Warning, register

from apps.core.site import site_base_url


def _local_only(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register(Tags.security, deploy=True)
def links_reach_the_portal(app_configs=None, **kwargs) -> list[Warning]:
    """Links made without a request (invitations, set-password links, notices) must name an
    address the recipient can reach. With LIGHTBOX_BASE_URL unset, the address comes from the
    first of DJANGO_ALLOWED_HOSTS, which may be the one a health probe uses ("localhost")."""
    base = site_base_url()
    if not _local_only(urlsplit(base).hostname or ""):
        return []
    return [Warning(
        f"Links sent without a request (invitations, set-password links, notices) would point at {base}, "
        "which only this machine can reach.",
        hint="Set LIGHTBOX_BASE_URL to the portal's public address (https://lightbox.hospital.example), "
             "or list that host first in DJANGO_ALLOWED_HOSTS.",
        id="lightbox.W001")]
