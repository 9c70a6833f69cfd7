"""Where to go after a form: the ``next`` a page passed along, if it is a path on this site; and
the URL that passes one along."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode


def next_url(request: HttpRequest, default: str = "dashboard") -> str:
    """``next`` from the form or the query string when it is a path on this site, else the URL of
    the view named ``default``. Only an absolute path is taken: anything else (another host, a
    scheme, or a bare word, which ``redirect`` would try to reverse as a view name and fail on
    with a 500) gives the default."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(default)


def with_next(name: str, target: str) -> str:
    """The URL of view ``name`` with ``?next=target`` (encoded), for ``next_url`` to read back."""
    return f"{reverse(name)}?{urlencode({'next': target})}"
