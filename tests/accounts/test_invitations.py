"""Invitations: single use, expiring, hashed tokens, exact e-mail, grants on acceptance, patients
checked by birth date and kept in the patient portal."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Invitation, User
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from tests.accounts.conftest import pending_device, totp_code
from tests.factories import CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-enough-passphrase-42"


@pytest.fixture
def radiologist(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


@pytest.fixture
def case(org_a, radiologist):
    return CaseFactory(organization=org_a, created_by=radiologist)


def _invite(org, by, case=None, email="consultant@elsewhere.example"):
    return services.invitation_create(organization=org, by=by, email=email, role=Role.EXTERNAL_CONSULTANT,
                                      cases=[case] if case else [])


def _url(raw):
    return f"/invite/{raw}/"


def test_token_is_random_long_and_only_its_hash_is_stored(org_a, radiologist, case):
    invitation, raw = _invite(org_a, radiologist, case)
    assert len(raw) >= 43  # 32 random bytes, url-safe base64
    assert invitation.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    _other, raw2 = _invite(org_a, radiologist, case, email="b@elsewhere.example")
    assert raw2 != raw
    # the raw token appears in no column of no table
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                assert not any(isinstance(v, str) and raw in v for v in row), table


def test_mail_has_link_and_no_patient_data(org_a, radiologist, case):
    patient = case.patient
    with_mail = _invite(org_a, radiologist, case)[1]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    assert _url(with_mail) in message.body and _url(with_mail) in html
    for text in (message.subject, message.body, html):
        assert patient.name not in text and patient.mrn not in text and case.title not in text
        assert patient.birth_date.isoformat() not in text


@pytest.mark.parametrize("required", [True, False])
def test_the_mail_promises_a_second_factor_only_where_the_role_is_asked_for_one(org_a, admin_a, required):
    # a radiologist was told to set up an authenticator app that nothing then asked for (found by QA)
    org_a.mfa_required_roles = [Role.RADIOLOGIST] if required else []
    org_a.save(update_fields=["mfa_required_roles"])
    services.invitation_create(organization=org_a, by=admin_a, email="new.rad@elsewhere.example", role=Role.RADIOLOGIST)
    message = mail.outbox[-1]
    said = "authenticator app (second factor)" in message.body
    assert said is required and "You will set a password" in message.body


def test_the_mail_declares_the_language_it_is_written_in(org_a, radiologist, case):
    from django.utils import translation

    with translation.override("es"):
        _invite(org_a, radiologist, case)
    html = mail.outbox[0].alternatives[0][0]
    assert '<html lang="es">' in html and "Hola:" in html


def test_consultant_accepts_creates_account_enrols_and_sees_only_the_invited_case(org_a, radiologist, case):
    other_case = CaseFactory(organization=org_a, created_by=radiologist)
    invitation, raw = _invite(org_a, radiologist, case)
    browser = Client()
    page = browser.get(_url(raw))
    assert page.status_code == 200 and invitation.email.encode() in page.content
    response = browser.post(_url(raw), {"step": "account", "full_name": "Dana Consultant",
                                        "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/mfa/setup/")
    user = User.objects.get(email=invitation.email)
    # exactly the invited e-mail, the invited role, one grant from the invitation
    assert Membership.objects.get(user=user, organization=org_a).role == Role.EXTERNAL_CONSULTANT
    grant = Grant.objects.get(grantee=user)
    assert (grant.case, grant.source) == (case, "invitation")
    # nothing else is reachable before the second factor
    for path in ("/", "/cases/", f"/sharing/cases/{case.public_id}/"):
        assert browser.get(path)["Location"].startswith("/accounts/mfa/setup/"), path
    browser.get("/accounts/mfa/setup/")
    device = pending_device(browser)
    assert browser.post("/accounts/mfa/setup/", {"code": totp_code(device), "next": "/"}).status_code == 302
    # recovery codes must be saved before going on
    assert browser.get("/")["Location"].startswith("/accounts/mfa/recovery-codes/")
    assert browser.post("/accounts/mfa/recovery-codes/", {"saved": "1", "next": "/"}).status_code == 302
    assert browser.get("/").status_code == 200
    # one case, not the other; the grant follows the consultant template (previews, needs MFA)
    assert browser.get(f"/sharing/cases/{case.public_id}/").status_code == 200
    assert browser.get(f"/sharing/cases/{other_case.public_id}/").status_code == 404
    assert (grant.use_case, grant.mfa_required, grant.permissions) == ("consultant", True,
                                                                     ["download_preview", "view"])
    user.is_verified = lambda: True  # as django-otp marks a verified session
    assert policy.can(user, Action.VIEW_CASE, case) and not policy.can(user, Action.VIEW_CASE, other_case)
    user.is_verified = lambda: False
    assert not policy.can(user, Action.VIEW_CASE, case)  # no second factor, no access
    # the link was single-use
    again = Client().get(_url(raw))
    assert again.status_code == 410 and b"already used" in again.content


def test_expired_reused_tampered_and_withdrawn_tokens_get_a_clear_page(org_a, radiologist, case):
    expired, raw_expired = _invite(org_a, radiologist, case, email="x1@elsewhere.example")
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = Client().get(_url(raw_expired))
    assert response.status_code == 410 and b"has expired" in response.content

    used, raw_used = _invite(org_a, radiologist, case, email="x2@elsewhere.example")
    user = User.objects.create_user(email="x2@elsewhere.example", password=PASSWORD)
    services.invitation_accept(invitation=used, user=user)
    response = Client().get(_url(raw_used))
    assert response.status_code == 410 and b"already used" in response.content
    with pytest.raises(Exception, match="no longer"):
        services.invitation_accept(invitation=used, user=user)  # a second acceptance is refused
    assert Grant.objects.filter(grantee=user).count() == 1

    ok, raw_ok = _invite(org_a, radiologist, case, email="x3@elsewhere.example")
    tampered = raw_ok[:-1] + ("A" if raw_ok[-1] != "A" else "B")
    response = Client().get(_url(tampered))
    assert response.status_code == 404 and b"not valid" in response.content

    services.invitation_revoke(invitation=ok, by=radiologist)
    response = Client().get(_url(raw_ok))
    assert response.status_code == 410 and b"withdrawn" in response.content
    reasons = list(AuditEvent.objects.filter(action="invitation.refused").values_list("details__reason", flat=True))
    assert {"expired", "used", "unknown", "revoked"} <= set(reasons)


def test_repeated_unknown_tokens_are_throttled(settings, org_a, radiologist, case):
    from django.core.cache import cache

    cache.clear()
    settings.LIGHTBOX_INVITE_TOKEN_MAX_FAILURES = 3
    _invitation, raw = _invite(org_a, radiologist, case)
    visitor = Client()
    for i in range(3):
        assert visitor.get(_url(f"guess{i}-{'x' * 40}")).status_code == 404
    # now even the right token waits: guessing cannot go on
    response = visitor.get(_url(raw))
    assert response.status_code == 429 and b"Too many invalid" in response.content
    assert AuditEvent.objects.filter(action="invitation.token_locked_out").exists()
    cache.clear()


def test_signed_in_with_another_address_cannot_accept(org_a, radiologist, case, client_as):
    invitation, raw = _invite(org_a, radiologist, case)
    stranger = member(org_a, Role.CLINICIAN, email="someone@alpha.example")
    client = client_as(stranger)
    client.get("/")  # no second factor needed for a clinician
    response = client.post(_url(raw), {"step": "accept"})
    assert response.status_code == 403
    invitation.refresh_from_db()
    assert invitation.accepted_at is None and not Grant.objects.filter(grantee=stranger).exists()


def test_existing_account_signs_in_then_accepts(org_a, org_b, radiologist, case, client_as):
    existing = member(org_b, Role.CLINICIAN, email="consultant@elsewhere.example")
    _invitation, raw = _invite(org_a, radiologist, case)
    response = Client().get(_url(raw))
    assert b"Sign in to accept" in response.content
    client = client_as(existing)
    response = client.post(_url(raw), {"step": "accept"})
    assert response.status_code == 302
    assert Membership.objects.get(user=existing, organization=org_a).role == Role.EXTERNAL_CONSULTANT
    assert Grant.objects.get(grantee=existing).case == case


def test_who_may_invite(org_a, org_b, radiologist, case, admin_a):
    coordinator = member(org_a, Role.COORDINATOR)
    with pytest.raises(Exception):  # noqa: B017 - PermissionDenied from policy
        _invite(org_a, coordinator, case)  # coordinators cannot share cases
    with pytest.raises(Exception):  # noqa: B017
        services.invitation_create(organization=org_a, by=radiologist, email="new@alpha.example",
                                   role=Role.ORG_ADMIN)  # staff roles: org admins only
    services.invitation_create(organization=org_a, by=admin_a, email="new@alpha.example", role=Role.RADIOLOGIST)
    foreign_case = CaseFactory(organization=org_b)
    with pytest.raises(Exception):  # noqa: B017
        _invite(org_a, radiologist, foreign_case)


# --- patients --------------------------------------------------------------------------------

@pytest.fixture
def patient_invitation(org_a, radiologist):
    patient = PatientFactory(organization=org_a, birth_date=date(1961, 4, 2))
    case = CaseFactory(organization=org_a, patient=patient, created_by=radiologist)
    invitation, raw = services.invitation_create(organization=org_a, by=radiologist, email="pat@home.example",
                                                 role=Role.PATIENT, patient=patient, case=case)
    return invitation, raw, case


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.ORG_ADMIN])
def test_the_service_refuses_a_patient_invitation_from_someone_who_may_not_share_the_case(org_a, role):
    """The service itself asks the policy (SHARE_CASE on the case the patient is invited from),
    not only the page: a caller without it gets PermissionDenied, recorded, and nothing is made."""
    from django.core.exceptions import PermissionDenied

    patient = PatientFactory(organization=org_a, birth_date=date(1961, 4, 2))
    case = CaseFactory(organization=org_a, patient=patient)
    inviter = member(org_a, role)
    assert not policy.can(inviter, Action.SHARE_CASE, case)
    with pytest.raises(PermissionDenied):
        services.invitation_create(organization=org_a, by=inviter, email="pat@home.example", role=Role.PATIENT,
                                   patient=patient, case=case)
    assert not Invitation.objects.exists() and not mail.outbox
    assert AuditEvent.objects.filter(action="access.denied", actor=inviter).exists()


def test_patient_proves_birth_date_and_reaches_only_the_portal(patient_invitation, org_a):
    _invitation, raw, case = patient_invitation
    browser = Client()
    assert b"date of birth" in browser.get(_url(raw)).content
    wrong = browser.post(_url(raw), {"step": "birth_date", "birth_date": "1961-04-03"})
    assert wrong.status_code == 400 and b"does not match" in wrong.content
    assert browser.post(_url(raw), {"step": "birth_date", "birth_date": "1961-04-02"}).status_code == 302
    response = browser.post(_url(raw), {"step": "account", "full_name": "Pat Home",
                                        "password1": PASSWORD, "password2": PASSWORD})
    assert response["Location"] == "/portal/"
    user = User.objects.get(email="pat@home.example")
    assert Membership.objects.get(user=user).role == Role.PATIENT
    assert browser.get("/portal/").status_code == 200
    assert browser.get("/")["Location"] == "/portal/"
    for path in ("/cases/", f"/cases/{case.public_id}/", "/sharing/", "/org/members/", "/admin/"):
        assert browser.get(path).status_code == 403, path
    assert browser.get("/api/v1/organizations/").status_code == 403


def test_patient_invitation_locks_after_five_wrong_birth_dates(patient_invitation):
    invitation, raw, _ = patient_invitation
    browser = Client()
    for _ in range(5):
        browser.post(_url(raw), {"step": "birth_date", "birth_date": "2000-01-01"})
    invitation.refresh_from_db()
    assert invitation.locked_at is not None
    # even the right date no longer opens it
    response = browser.post(_url(raw), {"step": "birth_date", "birth_date": "1961-04-02"})
    assert response.status_code == 410 and b"locked" in response.content


class _DownMailServer:
    """An e-mail backend whose server cannot be reached (or refuses the recipient)."""

    error: Exception = ConnectionRefusedError(111, "Connection refused")

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise self.error


class _RefusingMailServer(_DownMailServer):
    import smtplib

    error = smtplib.SMTPRecipientsRefused({"x@elsewhere.example": (550, b"user unknown")})


@pytest.mark.parametrize("backend", ["_DownMailServer", "_RefusingMailServer"])
def test_an_invitation_whose_email_cannot_be_sent_is_withdrawn_with_a_reason(settings, org_a, radiologist, case,
                                                                            verified_client, backend):
    """The mail server is down or refuses the address: the sender gets the form back with the
    reason (no server error), and the invitation, whose link nobody received and whose secret is
    not kept, is withdrawn (recorded), so it cannot be mistaken for one on its way."""
    settings.EMAIL_BACKEND = f"{__name__}.{backend}"
    client = verified_client(radiologist)
    client.raise_request_exception = False
    response = client.post("/org/invitations/new/", {"email": "c@elsewhere.example",
                                                     "role": Role.EXTERNAL_CONSULTANT, "cases": [case.pk],
                                                     "language": "en"})
    assert response.status_code == 400
    assert "could not be sent" in response.content.decode()
    invitation = Invitation.objects.get()
    assert invitation.revoked_at is not None and invitation.sent_at is None
    withdrawn = AuditEvent.objects.get(action="invitation.revoked")
    assert withdrawn.details["reason"] == "not_sent"
    # a patient invitation the same way
    patient_case = CaseFactory(organization=org_a, created_by=radiologist,
                               patient=PatientFactory(organization=org_a, birth_date=date(1970, 1, 2)))
    response = client.post(f"/cases/{patient_case.public_id}/invite-patient/",
                           {"email": "p@home.example", "language": "en"})
    assert response.status_code == 400 and "could not be sent" in response.content.decode()
    assert not Invitation.objects.filter(revoked_at__isnull=True).exists()


def test_an_inviter_who_may_share_no_case_is_told_what_the_consultant_will_see(org_a, admin_a, verified_client):
    """An org admin's invitation form listed no case under "Cases the invitation opens", said
    "None to choose from." and the usual help ("sees only these cases"): nothing said the invited
    consultant would see nothing until a case is shared with them, nor by whom."""
    CaseFactory(organization=org_a)  # open, but an admin does not share cases
    html = verified_client(admin_a).get("/org/invitations/new/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "You may share no open case" in html and "a clinician or a radiologist" in html


def test_an_inviter_who_may_share_cases_keeps_the_usual_help(org_a, radiologist, case, verified_client):
    html = verified_client(radiologist).get("/org/invitations/new/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert case.title in html and "You may share no open case" not in html
    assert "An external consultant sees only these cases, and nothing else." in html


def test_the_accept_page_says_a_second_factor_comes_next_only_where_the_role_needs_one(patient_invitation, org_a,
                                                                                       radiologist, case):
    """A consultant's role must have a second factor, and the page says it comes next; a
    patient's never does (the organization cannot ask it of them), and the page does not promise
    one that never comes."""
    _invitation, raw = _invite(org_a, radiologist, case)
    consultant_page = Client().get(_url(raw)).content.decode()
    assert "Next you will set up a second factor" in consultant_page
    _invitation, raw, _case = patient_invitation
    browser = Client()
    assert browser.post(_url(raw), {"step": "birth_date", "birth_date": "1961-04-02"}).status_code == 302
    patient_page = browser.get(_url(raw)).content.decode()
    assert 'data-testid="invitation-next"' in patient_page
    assert "second factor" not in patient_page
