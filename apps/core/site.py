"""The portal's own address, for links made without a request at hand (a management command, a
Celery task, a notification e-mail): invitation links, allauth's set-password link, the link in a
notice. With a request, links are built from it (``request.build_absolute_uri``) instead.

One place decides it: ``LIGHTBOX_BASE_URL`` when set (its scheme and host; a path is ignored, as
``reverse`` gives the whole path), else ``LIGHTBOX_HTTP_PROTOCOL`` (``ACCOUNT_DEFAULT_HTTP_PROTOCOL``)
over the first host of ``ALLOWED_HOSTS`` that names one (not ``*``; ``.example.org``, which
stands for the domain and its subdomains, gives ``example.org``), else ``localhost``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest


def site_base_url() -> str:
    """``scheme://host[:port]`` of the portal, without a trailing slash."""
    configured = urlsplit(str(getattr(settings, "LIGHTBOX_BASE_URL", "") or "").strip())
    if configured.scheme in ("http", "https") and configured.netloc:
        return f"{configured.scheme}://{configured.netloc}"
    hosts = [h.strip().lstrip(".") for h in settings.ALLOWED_HOSTS if h.strip() not in ("", "*", ".")]
    return f"{settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL}://{hosts[0] if hosts else 'localhost'}"


def site_url(path: str) -> str:
    """The absolute address of ``path`` (a ``reverse`` result, starting with "/")."""
    return site_base_url() + path


class _SiteRequest(HttpRequest):
    """A request "to" the portal's own address, for code that builds links from a request
    (allauth's e-mails). Its host is not checked against ``ALLOWED_HOSTS``: it was not sent by
    anyone, it is the address configured."""

    def __init__(self, base: str) -> None:
        super().__init__()
        parts = urlsplit(base)
        self._site_scheme, self._site_host = parts.scheme, parts.netloc
        self.META = {"SERVER_NAME": parts.hostname or "localhost",
                     "SERVER_PORT": str(parts.port or (443 if parts.scheme == "https" else 80)),
                     "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": parts.netloc}

    def _get_scheme(self) -> str:
        return self._site_scheme

    def get_host(self) -> str:
        return self._site_host


def site_request() -> HttpRequest:
    """A stand-in request to ``site_base_url()``, for links built without a real request."""
    return _SiteRequest(site_base_url())
