"""Redis (the shared cache of the sign-in throttle and the invitation-token lockout) cannot be
reached: sign-in, password reset and invitations still answer (no 500), and an account is still
locked after repeated wrong passwords (django-axes keeps its count in the database)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

# the production backend (portal/settings/base.py with REDIS_URL) at a port nothing listens on
REDIS_DOWN = {
    "default": {
        "BACKEND": "apps.core.cache.ResilientRedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}


def _sign_in(client, email, password=TEST_PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


@override_settings(CACHES=REDIS_DOWN, LIGHTBOX_MFA_ENFORCED=False)
def test_sign_in_works_while_the_cache_is_down_and_wrong_passwords_still_lock(settings, clinician_a, caplog):
    client = Client(raise_request_exception=False)
    assert _sign_in(client, clinician_a.email).status_code == 302
    assert "cache unreachable (ConnectionError)" in caplog.text
    other = Client(raise_request_exception=False)
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(other, clinician_a.email, "wrong-password-123").status_code == 200, attempt
    assert _sign_in(other, clinician_a.email, "wrong-password-123").status_code == 429


@override_settings(CACHES=REDIS_DOWN)
def test_invitation_and_password_reset_pages_answer_while_the_cache_is_down(clinician_a):
    client = Client(raise_request_exception=False)
    assert client.get("/invite/no-such-invitation-token/").status_code == 404  # the refusal page
    assert client.post("/accounts/password/reset/", {"email": clinician_a.email}).status_code == 302


@override_settings(CACHES=REDIS_DOWN)
def test_the_cache_reads_as_empty_while_redis_is_down():
    assert cache.add("k", 1, 60) is True
    assert cache.get("k", "default") == "default" and cache.get_many(["k"]) == {}
    with pytest.raises(ValueError):
        cache.incr("k")
    cache.set("k", 1)
    assert not cache.has_key("k") and cache.set_many({"a": 1}) == ["a"]
