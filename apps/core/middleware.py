"""Responses are not kept by browsers or proxies unless their view says otherwise.

Nearly every page of the portal carries patient data (names, MRNs, report notes) or a secret
(a share link's page, an invitation). A browser keeps pages in its disk cache unless told not
to, and a hospital workstation is shared: the next user could read them back from the cache
after the first signed out. So every response that has not chosen its own policy is sent with
``Cache-Control: no-store`` (Django's ``add_never_cache_headers``). Views that do choose keep
their choice: the viewer's frames (``private, no-cache`` with an ETag, revalidated on every
use), downloads. Static files never reach this middleware (WhiteNoise answers them above it).
"""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers


class PrivateByDefaultMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response
