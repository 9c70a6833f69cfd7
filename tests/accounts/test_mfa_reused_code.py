"""Found by QA: signing in a second time within the same 30 seconds with the code just used said
"That code is not right. Enter the current code from your app." - but it was the current code:
it is refused because it was used already (django-otp's ``last_t``). The page says so now, and
to wait for the next code. The refusal is unchanged: nothing is verified, the try counts
towards the lock as a wrong code does, and it is recorded as one (``details.reused``)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import mfa
from apps.audit.models import AuditEvent
from tests.accounts.conftest import enrol, totp_code

pytestmark = pytest.mark.django_db

REUSED = "That code has just been used. Wait for the next code from your app and enter it."
WRONG = "That code is not right. Enter the current code from your app."


def _signed_in(user) -> Client:
    """A client past the password (the second factor still to give)."""
    client = Client()
    client.force_login(user)
    return client


def _wrong_code(device: TOTPDevice) -> str:
    good = {totp_code(device, ahead=step) for step in (-2, -1, 0, 1, 2)}
    return next(c for c in ("123456", "654321", "111111", "999999") if c not in good)


def _used_code(user, device: TOTPDevice) -> str:
    """The code the app shows now, used to sign in on one device."""
    code = totp_code(device)
    assert _signed_in(user).post("/accounts/mfa/verify/", {"code": code, "next": "/"})["Location"] == "/"
    return code


def test_the_code_just_used_is_refused_and_said_to_be_used(clinician_a):
    device = enrol(clinician_a)
    code = _used_code(clinician_a, device)
    second = _signed_in(clinician_a)  # another device, within the same 30 seconds
    response = second.post("/accounts/mfa/verify/", {"code": code, "next": "/"})
    assert response.status_code == 400
    page = response.content.decode()
    assert REUSED in page and WRONG not in page
    # refused as before: not verified, counted and recorded as a wrong code
    assert second.get("/")["Location"].startswith("/accounts/mfa/verify/")
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    [failed] = AuditEvent.objects.filter(action="auth.otp_failed", actor=clinician_a)
    assert failed.details == {"purpose": "sign_in", "failures": 1, "reused": True}  # never the code
    # the next code from the app works
    assert second.post("/accounts/mfa/verify/", {"code": totp_code(device, ahead=1), "next": "/"})["Location"] == "/"


def test_a_wrong_code_is_still_said_to_be_wrong(clinician_a):
    device = enrol(clinician_a)
    _used_code(clinician_a, device)
    client = _signed_in(clinician_a)
    response = client.post("/accounts/mfa/verify/", {"code": _wrong_code(device), "next": "/"})
    assert response.status_code == 400
    page = response.content.decode()
    assert WRONG in page and REUSED not in page
    [failed] = AuditEvent.objects.filter(action="auth.otp_failed", actor=clinician_a)
    assert "reused" not in failed.details


def test_a_reused_code_counts_towards_the_lock_as_a_wrong_one(clinician_a):
    device = enrol(clinician_a)
    code = _used_code(clinician_a, device)
    client = _signed_in(clinician_a)
    for attempt in range(settings.LIGHTBOX_OTP_MAX_FAILURES - 1):
        response = client.post("/accounts/mfa/verify/", {"code": code})
        assert response.status_code == 400 and REUSED in response.content.decode(), attempt
    locked = client.post("/accounts/mfa/verify/", {"code": code})
    assert locked.status_code == 429 and b"Too many wrong codes" in locked.content
    assert REUSED not in locked.content.decode()
    # locked: even a fresh code is refused, and nothing says whether it is right or used
    refused = client.post("/accounts/mfa/verify/", {"code": totp_code(device, ahead=1)})
    assert refused.status_code == 429 and REUSED not in refused.content.decode()
    assert AuditEvent.objects.filter(action="auth.otp_locked_out", actor=clinician_a).count() == 1


def test_the_step_up_says_so_too(clinician_a):
    device = enrol(clinician_a)
    code = _used_code(clinician_a, device)
    client = _signed_in(clinician_a)
    response = client.post("/accounts/mfa/step-up/", {"code": code, "next": "/"})
    assert response.status_code == 400 and REUSED in response.content.decode()
    assert not mfa.recently_verified(response.wsgi_request)


def test_the_check_tells_a_used_code_from_a_wrong_one(rf, clinician_a):
    """``otp_check`` itself: REUSED only for a code of the app's current window already used."""
    from django.contrib.sessions.backends.db import SessionStore

    device = enrol(clinician_a)

    def check(code: str) -> str:
        request = rf.post("/accounts/mfa/verify/")
        request.session, request.user = SessionStore(), clinician_a
        return mfa.otp_check(request, clinician_a, code)[0]

    code = totp_code(device)
    assert check(code) == mfa.OTPResult.OK
    assert check(code) == mfa.OTPResult.REUSED
    assert check(_wrong_code(device)) == mfa.OTPResult.WRONG
    assert check(totp_code(device, ahead=1)) == mfa.OTPResult.OK
