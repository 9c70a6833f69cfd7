"""Codes of the second factor sent at the same moment, each on its own thread and database
connection: the lock after LIGHTBOX_OTP_MAX_FAILURES wrong codes holds (each try is claimed in
the database before its code is checked), and a code, an authenticator's or a recovery code,
works once. django-otp read the count, checked the code, then wrote the count plus one: twelve
wrong codes at once left a count of one or two and were all checked; and a recovery code was read
by both requests before either deleted it."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction
from django.test import RequestFactory
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import mfa
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.accounts.conftest import enrol, totp_code
from tests.factories import member
from tests.threads import in_thread, in_thread_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)


def _at_once(user, codes: list[str]) -> list[str]:
    """Check each of ``codes`` for ``user`` on a thread of its own, all let go at the same time;
    the results (OTPResult values)."""
    barrier = threading.Barrier(len(codes))
    results: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def check(code: str) -> None:
        request = RequestFactory().post("/accounts/mfa/verify/")
        request.session = SessionStore()
        request.user = user
        TOTPDevice.objects.exists()  # the connection is open before the race starts
        barrier.wait(timeout=30)
        result, _until = mfa.otp_check(request, user, code)
        with lock:
            results.append(result)

    threads = [in_thread(failures, check, code) for code in codes]
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return results


def _wrong_codes(device: TOTPDevice, n: int) -> list[str]:
    good = {totp_code(device, ahead=step) for step in (-1, 0, 1)}
    return [code for code in (f"{i * 7919 % 1000000:06d}" for i in range(1, 100)) if code not in good][:n]


def test_wrong_codes_sent_at_once_are_checked_no_more_than_the_limit(org_a):
    user = member(org_a, Role.CLINICIAN, email="victim@alpha.example")
    device = enrol(user)
    limit = settings.LIGHTBOX_OTP_MAX_FAILURES
    results = _at_once(user, _wrong_codes(device, 12))
    checked = [r for r in results if r == mfa.OTPResult.WRONG]
    # exactly the limit were checked (the last of them locks); every other was refused unchecked
    assert len(checked) == limit - 1, results
    assert results.count(mfa.OTPResult.LOCKED) == 12 - (limit - 1)
    assert AuditEvent.objects.filter(action="auth.otp_failed", actor=user).count() == limit
    assert AuditEvent.objects.filter(action="auth.otp_locked_out", actor=user).count() == 1
    assert AuditEvent.objects.filter(action="auth.otp_refused_locked", actor=user).count() == 12 - limit
    device.refresh_from_db()
    assert device.throttling_failure_count == limit and mfa.locked_until(device) is not None


def test_a_right_code_sent_at_once_works_once(org_a):
    user = member(org_a, Role.CLINICIAN, email="twice@alpha.example")
    device = enrol(user)
    results = _at_once(user, [totp_code(device)] * 4)
    # the others are refused as the code just used (``OTPResult.REUSED``), counted as wrong ones
    assert sorted(results) == [mfa.OTPResult.OK] + [mfa.OTPResult.REUSED] * 3, results
    assert AuditEvent.objects.filter(action="auth.otp_verified", actor=user).count() == 1


def test_a_recovery_code_sent_at_once_works_once(org_a):
    user = member(org_a, Role.CLINICIAN, email="recovery@alpha.example")
    enrol(user)
    static = StaticDevice.objects.get(user=user)
    code = static.token_set.first().token
    results = _at_once(user, [code] * 4)
    assert results.count(mfa.OTPResult.OK) == 1, results
    assert not static.token_set.filter(token=code).exists()
    assert AuditEvent.objects.filter(action="auth.mfa_recovery_code_used", actor=user).count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
def test_a_recovery_code_is_used_by_the_delete_that_removes_it(org_a):
    """The two uses of one code held together: the first has deleted it, not yet committed; the
    second, on another connection, read it before and waits to delete it. Its DELETE then finds
    no row and the code is refused (a read, then a delete, let both through)."""
    user = member(org_a, Role.CLINICIAN, email="held@alpha.example")
    enrol(user)
    code = StaticDevice.objects.get(user=user).token_set.first().token
    second: list = []
    failures: list[BaseException] = []
    with transaction.atomic():
        assert mfa._recovery_code_use(user, code) is not None
        thread = in_thread_until_blocked(failures, lambda: second.append(mfa._recovery_code_use(user, code)))
    thread.join(timeout=30)
    assert not failures, failures
    assert second == [None]


def test_a_right_code_gives_its_try_back(org_a):
    user = member(org_a, Role.CLINICIAN, email="right@alpha.example")
    device = enrol(user)
    limit = settings.LIGHTBOX_OTP_MAX_FAILURES
    assert _at_once(user, _wrong_codes(device, limit - 1)) == [mfa.OTPResult.WRONG] * (limit - 1)
    assert _at_once(user, [totp_code(device)]) == [mfa.OTPResult.OK]
    device.refresh_from_db()
    assert device.throttling_failure_count == 0 and device.throttling_failure_timestamp is None
