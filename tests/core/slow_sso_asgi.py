"""The portal's ASGI application (portal.asgi), its "Sign in with your organization" page one
second slower: for tests/core/test_after_response_disconnect.py, served by uvicorn, whose client
leaves while that view runs."""

from __future__ import annotations

import time

from portal.asgi import application

__all__ = ["application"]

from apps.accounts import brute_force  # after portal.asgi, which loads the apps

_claim = brute_force.sso_start_claim


def _slow_claim(request, email):
    time.sleep(1)
    return _claim(request, email)


brute_force.sso_start_claim = _slow_claim
