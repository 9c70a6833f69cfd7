"""Second factor: who must enrol, the sign-in step, lockout on wrong codes, recovery codes,
step-up on a real view (sending an invitation) and on a DRF view."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from apps.accounts import mfa
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.accounts.conftest import enrol, pending_device, totp_code
from tests.factories import CaseFactory, MembershipFactory, member

pytestmark = pytest.mark.django_db


def test_required_roles_are_sent_to_enrolment_others_are_not(org_a, admin_a, clinician_a, client_as):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    for user in (admin_a, consultant):
        response = client_as(user).get("/cases/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/mfa/setup/?next=%2Fcases%2F")
    assert client_as(clinician_a).get("/").status_code == 200
    # the organization decides: requiring clinicians sends them too
    org_a.mfa_required_roles = [Role.CLINICIAN, Role.EXTERNAL_CONSULTANT]
    org_a.save()
    assert client_as(clinician_a).get("/")["Location"].startswith("/accounts/mfa/setup/")
    assert client_as(admin_a).get("/").status_code == 200
    # the API answers 403, not a redirect
    assert client_as(consultant).get("/api/v1/organizations/").status_code == 403


def test_enrolment_shows_qr_and_key_and_confirms_with_a_code(admin_a, client_as):
    client = client_as(admin_a)
    page = client.get("/accounts/mfa/setup/?next=/org/members/")
    assert page.status_code == 200
    assert b"<svg" in page.content and b"data-testid=\"totp-key\"" in page.content
    device = pending_device(client)
    assert mfa.manual_key(device).encode() in page.content
    # the QR code does not change on reload (same key); nothing is stored before a code confirms it
    assert mfa.manual_key(device).encode() in client.get("/accounts/mfa/setup/").content
    assert not TOTPDevice.objects.filter(user=admin_a).exists()
    wrong = client.post("/accounts/mfa/setup/", {"code": "000000" if totp_code(device) != "000000" else "111111"})
    assert wrong.status_code == 400
    assert not TOTPDevice.objects.filter(user=admin_a).exists() and not mfa.has_second_factor(admin_a)
    response = client.post("/accounts/mfa/setup/", {"code": totp_code(device), "next": "/org/members/"})
    assert response["Location"].startswith("/accounts/mfa/recovery-codes/")
    [stored] = TOTPDevice.objects.filter(user=admin_a)
    assert stored.confirmed and stored.key == device.key
    codes_page = client.get("/accounts/mfa/recovery-codes/")
    codes = list(StaticDevice.objects.get(user=admin_a).token_set.values_list("token", flat=True))
    assert len(codes) == 10 and all(c.encode() in codes_page.content for c in codes)
    assert client.get("/org/members/")["Location"].startswith("/accounts/mfa/recovery-codes/")
    done = client.post("/accounts/mfa/recovery-codes/", {"saved": "1", "next": "/org/members/"})
    assert done["Location"] == "/org/members/"
    assert client.get("/org/members/").status_code == 200


def test_looking_at_the_enrolment_page_stores_nothing_and_an_abandoned_key_dies_with_the_session(admin_a, client_as):
    """GET /accounts/mfa/setup/ used to store an unconfirmed authenticator, kept for good and shown
    again at the next enrolment, however much later: anyone who saw that QR code then could
    answer the authenticator enrolled with it. The key now waits in the session."""
    first = client_as(admin_a)
    first.get("/accounts/mfa/setup/")
    abandoned = pending_device(first)
    assert not TOTPDevice.objects.filter(user=admin_a).exists()
    assert not mfa.has_second_factor(admin_a) and not mfa.recovery_codes_pending(admin_a)
    # another session (a new sign-in) gets another key; a code of the abandoned one enrols nothing
    later = client_as(admin_a)
    page = later.get("/accounts/mfa/setup/")
    device = pending_device(later)
    assert device.key != abandoned.key and mfa.manual_key(abandoned).encode() not in page.content
    assert later.post("/accounts/mfa/setup/", {"code": totp_code(abandoned)}).status_code == 400
    assert not TOTPDevice.objects.filter(user=admin_a).exists()
    assert later.post("/accounts/mfa/setup/", {"code": totp_code(device)}).status_code == 302
    assert list(TOTPDevice.objects.filter(user=admin_a).values_list("key", "confirmed")) == [(device.key, True)]
    assert mfa.TOTP_PENDING_KEY not in later.session


def test_enrolment_removes_authenticators_left_unconfirmed_and_uses_up_its_code(admin_a, client_as):
    """An unconfirmed device stored by the enrolment page of old versions goes when the user
    enrols (the migration removes the others); the code that confirmed the new one cannot also
    pass the sign-in check."""
    TOTPDevice.objects.create(user=admin_a, name="authenticator", confirmed=False)
    client = client_as(admin_a)
    client.get("/accounts/mfa/setup/")
    device = pending_device(client)
    code = totp_code(device)
    assert client.post("/accounts/mfa/setup/", {"code": code}).status_code == 302
    assert list(TOTPDevice.objects.filter(user=admin_a).values_list("confirmed", flat=True)) == [True]
    again = client_as(admin_a)
    assert again.post("/accounts/mfa/verify/", {"code": code, "next": "/"}).status_code != 302
    # a second submit of the enrolment form enrols nothing more
    client.post("/accounts/mfa/setup/", {"code": totp_code(device, ahead=1)})
    assert TOTPDevice.objects.filter(user=admin_a).count() == 1


def test_sign_in_asks_for_the_code_after_the_password(org_a, clinician_a):
    device = enrol(clinician_a)  # offered to everyone: once enrolled, always asked
    client = Client()
    response = client.post("/accounts/login/", {"login": clinician_a.email, "password": "correct-horse-battery-staple"})
    assert response.status_code == 302
    assert client.get("/")["Location"].startswith("/accounts/mfa/verify/?next=%2F")
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"})["Location"] == "/"
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("codes", ["not_saved_yet", "none_made"])
def test_the_password_alone_neither_shows_nor_confirms_recovery_codes(org_a, clinician_a, codes):
    """Someone who has only the password (signed in, no code yet) reached the recovery codes
    page, which is open before the second factor: it showed codes not yet saved (or made new
    ones where there were none), and "I saved them" confirmed them; one of them then passed the
    second factor. Only a session that passed the second factor sees or confirms them."""
    TOTPDevice.objects.create(user=clinician_a, name="authenticator", confirmed=True)
    issued = mfa.recovery_codes_issue(clinician_a) if codes == "not_saved_yet" else []
    client = Client()
    assert client.post("/accounts/login/", {"login": clinician_a.email,
                                            "password": "correct-horse-battery-staple"}).status_code == 302
    page = client.get("/accounts/mfa/recovery-codes/?next=/cases/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/mfa/verify/?next=%2Faccounts%2Fmfa%2Frecovery-codes%2F")
    saved = client.post("/accounts/mfa/recovery-codes/", {"saved": "1", "next": "/"})
    assert saved.status_code == 302 and saved["Location"].startswith("/accounts/mfa/verify/")
    assert list(StaticDevice.objects.filter(user=clinician_a).values_list("confirmed", flat=True)) == \
        ([False] if issued else [])
    for code in issued[:1]:
        assert client.post("/accounts/mfa/verify/", {"code": code, "next": "/"}).status_code == 400
    assert client.get("/")["Location"].startswith("/accounts/mfa/verify/")


def test_recovery_code_works_once(clinician_a):
    enrol(clinician_a)
    code = StaticDevice.objects.get(user=clinician_a).token_set.first().token
    first = Client()
    first.force_login(clinician_a)
    assert first.post("/accounts/mfa/verify/", {"code": code, "next": "/"})["Location"] == "/"
    second = Client()
    second.force_login(clinician_a)
    assert second.post("/accounts/mfa/verify/", {"code": code, "next": "/"}).status_code == 400


def test_wrong_codes_lock_the_second_factor(settings, clinician_a):
    device = enrol(clinician_a)
    client = Client()
    client.force_login(clinician_a)
    good = totp_code(device)
    bad = "123456" if good != "123456" else "654321"
    for attempt in range(settings.LIGHTBOX_OTP_MAX_FAILURES - 1):
        assert client.post("/accounts/mfa/verify/", {"code": bad}).status_code == 400, attempt
    locked = client.post("/accounts/mfa/verify/", {"code": bad})
    assert locked.status_code == 429 and b"Too many wrong codes" in locked.content
    # now even the right code is refused until the lock ends
    refused = client.post("/accounts/mfa/verify/", {"code": good})
    assert refused.status_code == 429
    assert client.get("/")["Location"].startswith("/accounts/mfa/verify/")
    assert AuditEvent.objects.filter(action="auth.otp_locked_out", actor=clinician_a).exists()
    assert AuditEvent.objects.filter(action="auth.otp_failed", actor=clinician_a).count() == 5
    # after the lock, the right code works again
    device.refresh_from_db()
    TOTPDevice.objects.filter(pk=device.pk).update(  # a year back (replace(year=...) fails on 29 February)
        throttling_failure_timestamp=device.throttling_failure_timestamp - timedelta(days=365))
    assert client.post("/accounts/mfa/verify/", {"code": good, "next": "/"})["Location"] == "/"


def test_wrong_enrolment_codes_lock_enrolment(settings, admin_a, client_as):
    """The code typed on the enrolment page was checked without any limit, while the sign-in code
    locks after LIGHTBOX_OTP_MAX_FAILURES wrong ones. The same limits now hold for it, per account
    (another session, with another key, is locked too), recorded as the sign-in codes are
    (purpose "enrol"); the page says to wait, and how long."""
    from django.core.cache import cache

    client = client_as(admin_a)
    client.get("/accounts/mfa/setup/")
    device = pending_device(client)
    good = totp_code(device)
    bad = "123456" if good != "123456" else "654321"
    for attempt in range(settings.LIGHTBOX_OTP_MAX_FAILURES - 1):
        assert client.post("/accounts/mfa/setup/", {"code": bad}).status_code == 400, attempt
    locked = client.post("/accounts/mfa/setup/", {"code": bad})
    assert locked.status_code == 429
    assert f"Wait {settings.LIGHTBOX_OTP_LOCK_MINUTES} minutes" in locked.content.decode()
    # even the right code is refused while the lock holds, in this session and in another
    assert client.post("/accounts/mfa/setup/", {"code": good}).status_code == 429
    other = client_as(admin_a)
    other.get("/accounts/mfa/setup/")
    assert other.post("/accounts/mfa/setup/", {"code": totp_code(pending_device(other))}).status_code == 429
    assert not TOTPDevice.objects.filter(user=admin_a).exists()
    events = AuditEvent.objects.filter(actor=admin_a, details__purpose="enrol")
    assert events.filter(action="auth.otp_failed").count() == settings.LIGHTBOX_OTP_MAX_FAILURES
    assert events.filter(action="auth.otp_locked_out").count() == 1
    assert events.filter(action="auth.otp_refused_locked").count() == 2
    # once the lock has lapsed (the cache forgets it), the right code enrols
    cache.clear()
    assert client.post("/accounts/mfa/setup/", {"code": good})["Location"].startswith("/accounts/mfa/recovery-codes/")
    assert mfa.has_second_factor(admin_a)


def test_a_right_enrolment_code_clears_the_wrong_ones_before_it(settings, admin_a, client_as):
    client = client_as(admin_a)
    client.get("/accounts/mfa/setup/")
    device = pending_device(client)
    bad = "123456" if totp_code(device) != "123456" else "654321"
    for _ in range(settings.LIGHTBOX_OTP_MAX_FAILURES - 1):
        assert client.post("/accounts/mfa/setup/", {"code": bad}).status_code == 400
    assert client.post("/accounts/mfa/setup/", {"code": totp_code(device)}).status_code == 302


def test_enrolment_codes_posted_at_once_are_each_counted_before_any_is_checked(settings, rf, admin_a):
    """A try is claimed (an atomic count) before its code is checked: codes posted at once cannot
    all be checked against a count none of them has raised yet."""
    from apps.accounts import brute_force

    request = rf.post("/accounts/mfa/setup/")
    claims = [brute_force.enrolment_code_claim(request, admin_a) for _ in range(settings.LIGHTBOX_OTP_MAX_FAILURES + 1)]
    assert claims[:-1] == [None] * settings.LIGHTBOX_OTP_MAX_FAILURES and claims[-1] is not None


# --- step-up ---------------------------------------------------------------------------------

def _age_verification(client, hours: float) -> None:
    session = client.session
    session[mfa.OTP_VERIFIED_AT] = time.time() - hours * 3600
    session.save()


def test_step_up_on_sending_an_invitation(settings, org_a, verified_client):
    radiologist = member(org_a, Role.RADIOLOGIST)
    case = CaseFactory(organization=org_a, created_by=radiologist)
    client = verified_client(radiologist)
    assert client.get("/org/invitations/new/").status_code == 200  # verified just now
    _age_verification(client, settings.LIGHTBOX_STEP_UP_HOURS + 0.1)
    response = client.get("/org/invitations/new/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/mfa/step-up/?next=%2Forg%2Finvitations%2Fnew%2F"
    # a POST without a fresh code sends nothing
    data = {"email": "c@elsewhere.example", "role": Role.EXTERNAL_CONSULTANT, "cases": [case.pk]}
    assert client.post("/org/invitations/new/", data).status_code == 302
    from apps.accounts.models import Invitation

    assert not Invitation.objects.exists()
    device = TOTPDevice.objects.get(user=radiologist)
    back = client.post("/accounts/mfa/step-up/", {"code": totp_code(device, ahead=1), "next": "/org/invitations/new/"})
    assert back["Location"] == "/org/invitations/new/"
    assert client.post("/org/invitations/new/", data).status_code == 302
    assert Invitation.objects.get().cases.get() == case
    assert AuditEvent.objects.filter(action="auth.step_up_required").exists()


def test_step_up_sends_a_user_without_authenticator_to_enrol(org_a, client_as):
    radiologist = member(org_a, Role.RADIOLOGIST)
    client = client_as(radiologist)
    assert client.get("/org/invitations/new/")["Location"].startswith("/accounts/mfa/step-up/")
    assert client.get("/accounts/mfa/step-up/?next=/org/invitations/new/")["Location"].startswith(
        "/accounts/mfa/setup/")


class _OriginalApi(APIView):
    permission_classes = [IsAuthenticated, mfa.RecentOTP]

    def get(self, request):
        return Response({"ok": True})


def test_recent_otp_drf_permission(settings, clinician_a, verified_client):
    factory = APIRequestFactory()
    client = verified_client(clinician_a)
    session = client.session

    def call():
        request = factory.get("/api/v1/x/")
        request.session = session
        from django_otp.middleware import OTPMiddleware

        request.user = clinician_a
        OTPMiddleware(lambda r: None)(request)
        from rest_framework.test import force_authenticate

        force_authenticate(request, user=request.user)
        return _OriginalApi.as_view()(request)

    assert call().status_code == 200
    session[mfa.OTP_VERIFIED_AT] = time.time() - (settings.LIGHTBOX_STEP_UP_HOURS + 1) * 3600
    response = call()
    assert response.status_code == 403 and response.data["detail"] == "step_up_required"
    assert response.data["step_up_url"].startswith(reverse("accounts:step_up"))  # as the decorator's answer


def test_admin_resets_a_members_second_factor_and_their_sessions_end(org_a, admin_a, verified_client):
    from apps.organizations.models import Membership

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    their_client = verified_client(consultant)
    assert their_client.get("/sharing/received/").status_code == 200
    admin = verified_client(admin_a)
    membership = Membership.objects.get(user=consultant)
    assert b"Reset second factor" in admin.get(f"/org/members/{membership.public_id}/").content
    response = admin.post(f"/org/members/{membership.public_id}/reset-mfa/")
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=consultant).exists()
    assert their_client.get("/sharing/received/")["Location"].startswith("/accounts/login/")
    # a consultant is not an admin: cannot reset the admin's factor
    consultant.refresh_from_db()
    assert verified_client(consultant).post(
        f"/org/members/{Membership.objects.get(user=admin_a).public_id}/reset-mfa/").status_code in (403, 404)
    assert TOTPDevice.objects.filter(user=admin_a).exists()


def test_security_page_and_new_recovery_codes(clinician_a, client_as, verified_client):
    assert b"Set up an authenticator app" in client_as(clinician_a).get("/accounts/mfa/").content
    client = verified_client(clinician_a)
    old = set(StaticDevice.objects.get(user=clinician_a).token_set.values_list("token", flat=True))
    assert b"10 recovery codes left" in client.get("/accounts/mfa/").content
    response = client.post("/accounts/mfa/recovery-codes/renew/")
    assert response["Location"].startswith("/accounts/mfa/recovery-codes/")
    new = set(StaticDevice.objects.get(user=clinician_a).token_set.values_list("token", flat=True))
    assert new and not (new & old)
    assert client.get("/")["Location"].startswith("/accounts/mfa/recovery-codes/")  # save them first
    client.post("/accounts/mfa/recovery-codes/", {"saved": "1"})
    assert client.get("/").status_code == 200
    # opened again, once saved: not headed "Save your recovery codes" over a page that says they are
    again = client.get("/accounts/mfa/recovery-codes/").content.decode()
    assert "Your recovery codes are saved." in again and "Save your recovery codes" not in again


def test_with_no_recovery_code_left_the_security_page_says_to_make_new_ones(clinician_a, verified_client):
    """With every recovery code used (or none ever made, as the demo's accounts), the page said
    "0 recovery codes left." and then "Sign in with a recovery code": what to do was not said."""
    client = verified_client(clinician_a)
    StaticDevice.objects.get(user=clinician_a).token_set.all().delete()
    html = client.get("/accounts/mfa/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "0 recovery codes left" not in html and "Sign in with a recovery code" not in html
    assert 'data-testid="no-recovery-codes"' in html and "make new ones" in html
    assert 'class="primary">Make new recovery codes' in html


@pytest.mark.parametrize("next_value", ["2026-13-45", "0", "dashboard-ish", "https://evil.example/", "//evil.example/"])
def test_a_next_that_is_not_a_path_here_goes_to_the_dashboard(org_a, verified_client, next_value):
    """A bare word in ``next`` was handed to ``redirect``, which tried it as a view name: a 500 on
    the second-factor pages. Now anything but a path on this site goes to the dashboard."""
    user = member(org_a, Role.RADIOLOGIST)
    client = verified_client(user)  # recently verified: step-up's GET redirects to next at once
    response = client.get("/accounts/mfa/step-up/", {"next": next_value})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    response = client.get("/accounts/mfa/step-up/", {"next": "/cases/"})
    assert response.status_code == 302 and response["Location"] == "/cases/"


def test_the_security_page_leads_to_changing_the_password_for_accounts_that_have_one(clinician_a, client_as):
    """The password change page was reachable only by typing its address; an account signed in
    by single sign-on has no password here, and no such link."""
    url = reverse("accounts:security")
    link = f'href="{reverse("account_change_password")}" data-testid="change-password"'
    assert link in client_as(clinician_a).get(url).content.decode()
    assert client_as(clinician_a).get(reverse("account_change_password")).status_code == 200
    clinician_a.set_unusable_password()
    clinician_a.save()
    assert link not in client_as(clinician_a).get(url).content.decode()


def test_the_security_page_of_a_person_of_two_organizations_does_not_send_them_to_an_admin(
        clinician_a, verified_client):
    """An admin may reset only the second factor of a person whose every organization they
    manage (``policy.second_factor_reset_allowed``); the page still told a consultant of two
    hospitals to ask their admin, who would be refused. It now says who does it."""
    client = verified_client(clinician_a)
    html = client.get("/accounts/mfa/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "ask your organization's admin to reset" in html and "reset-by-operator" not in html
    MembershipFactory(user=clinician_a, role=Role.EXTERNAL_CONSULTANT)  # consults for another hospital
    html = client.get("/accounts/mfa/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "admin to reset" not in html and 'data-testid="reset-by-operator"' in html
    assert "Sign in with a recovery code." in html and "the team that runs Lightbox" in html
    StaticDevice.objects.get(user=clinician_a).token_set.all().delete()
    html = client.get("/accounts/mfa/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Sign in with a recovery code" not in html and "the team that runs Lightbox" in html


def test_a_code_of_digits_other_than_ascii_is_a_wrong_code_not_an_error(org_a, clinician_a):
    # "²²²²²²" is six digits to str.isdigit() and none to int(): the check answered 500
    device = enrol(clinician_a)
    client = Client()
    client.post("/accounts/login/", {"login": clinician_a.email, "password": "correct-horse-battery-staple"})
    response = client.post("/accounts/mfa/verify/", {"code": "²" * device.digits, "next": "/"})
    assert response.status_code == 400
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"})["Location"] == "/"


def test_a_spent_count_without_a_time_is_a_lock_that_is_over(org_a, clinician_a):
    # a count at the maximum with no time (a row written by hand, a lowered maximum) refused every
    # code and never lifted
    from django.conf import settings

    device = enrol(clinician_a)
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=settings.LIGHTBOX_OTP_MAX_FAILURES,
                                                   throttling_failure_timestamp=None)
    client = Client()
    client.post("/accounts/login/", {"login": clinician_a.email, "password": "correct-horse-battery-staple"})
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"})["Location"] == "/"
