"""A session's end the server sees makes the browser forget what it may cache of the site
(``Clear-Site-Data``, apps.core.middleware.PrivateByDefaultMiddleware): a sign-out (the user's or
the idle sign-out's: "cache" and "storage"), and a session whose time was up, its cookie still
sent ("cache", once, as Django deletes the cookie). The viewer's frames are ``no-store`` anyway
(tests/viewer/test_views.py); this is for what a browser still kept."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import Client

from apps.accounts.middleware import LAST_SEEN

pytestmark = pytest.mark.django_db


def _cleared(response) -> set[str]:
    return {part.strip() for part in response.get("Clear-Site-Data", "").split(",") if part.strip()}


def test_the_idle_sign_out_clears_the_browsers_cache(client_as, clinician_a):
    client = client_as(clinician_a)
    assert client.get("/").status_code == 200
    session = client.session
    session[LAST_SEEN] = time.time() - 24 * 3600
    session.save()
    signed_out = client.get("/")
    assert signed_out.status_code == 302 and signed_out["Location"].startswith("/accounts/login/")
    assert '"cache"' in _cleared(signed_out)


def test_a_request_with_an_ended_sessions_cookie_clears_the_browsers_cache(client_as, clinician_a):
    client = client_as(clinician_a)
    live = client.get("/")
    assert live.status_code == 200 and _cleared(live) == set()  # a live session: nothing cleared
    client.session.delete()  # its time was up: the server no longer has it (the cookie is still sent)
    assert settings.SESSION_COOKIE_NAME in client.cookies
    ended = client.get("/")
    assert ended.status_code == 302 and ended["Location"].startswith("/accounts/login/")
    assert _cleared(ended) == {'"cache"'}
    # the cookie is deleted with it: the next request is a stranger's, nothing more to clear
    assert ended.cookies[settings.SESSION_COOKIE_NAME].value == ""
    assert _cleared(client.get("/accounts/login/")) == set()


def test_a_first_visit_clears_nothing():
    response = Client().get("/accounts/login/")
    assert response.status_code == 200 and _cleared(response) == set()
