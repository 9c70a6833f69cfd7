"""System checks of the portal's own settings (``manage.py check --deploy``)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.core.checks import Error, Tags, Warning, register

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


def audit_database_vendor() -> str:
    """The engine of the database holding the audit trail ("postgresql", "sqlite"...)."""
    from django.db import connections, router

    from apps.audit.models import AuditEvent

    return connections[router.db_for_write(AuditEvent)].vendor


@register(Tags.security, deploy=True)
def audit_trail_on_postgresql(app_configs=None, **kwargs) -> list[Error]:
    """The audit trail's database-level protection (triggers refusing UPDATE, DELETE and TRUNCATE
    of its tables, and changes to an organization's ``audit_started_at``: the audit migrations)
    exists only on PostgreSQL. On SQLite (the embedded default, for ``make run`` and trials) the
    application's own refusals are all there is: not a deployment for a hospital's trail."""
    vendor = audit_database_vendor()
    if vendor == "postgresql":
        return []
    return [Error(
        f"The audit trail is kept in a {vendor} database, which has none of its database-level protection "
        "(the triggers refusing changes to audit events exist only on PostgreSQL).",
        hint="Set DATABASE_URL to a PostgreSQL database (postgres://user:password@host:5432/name).",
        id="lightbox.E001")]
