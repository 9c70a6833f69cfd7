"""Sending an invitation again (the invitations page's "Send again"), for an invitee who lost the
e-mail or let it expire: a new link and a new expiry; the old link stops working; the e-mail is the
invitation's own (no patient data); refused for an accepted, withdrawn or locked invitation, to whoever
may not withdraw it, to an inviter who could no longer make it (a consultant's or a patient's), and
within a minute of the last e-mail; recorded in the audit trail. An e-mail that could not be sent
leaves the invitation as it was (the earlier link works)."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Invitation
from apps.audit.models import AuditEvent
from apps.cases.models import CaseStatus
from apps.organizations.models import Role
from tests.conftest import mail_patient_leaks
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

CONSULTANT = "ext.one@stmarys.example"


@pytest.fixture
def case(org_a, clinician_a):
    return CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)


@pytest.fixture
def invitation(org_a, clinician_a, case):
    """A clinician's pending consultant invitation to their case, its e-mail sent more than a
    minute ago (the outbox emptied); and its raw token."""
    invitation, raw = services.invitation_create(organization=org_a, by=clinician_a, email=CONSULTANT,
                                                 role=Role.EXTERNAL_CONSULTANT, cases=[case])
    _sent_earlier(invitation)
    mail.outbox.clear()
    return invitation, raw


def _sent_earlier(invitation, minutes=2):
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now() - timedelta(minutes=minutes))


def _resend_url(invitation):
    return f"/org/invitations/{invitation.public_id}/resend/"


def _messages(response):
    return [str(m) for m in response.wsgi_request._messages]


def test_the_old_link_stops_working_and_the_new_one_works(org_a, clinician_a, invitation, verified_client):
    invitation, old_raw = invitation
    old_expiry = invitation.expires_at
    client = verified_client(clinician_a)
    response = client.post(_resend_url(invitation))
    assert response.status_code == 302 and response.url == "/org/invitations/"

    assert len(mail.outbox) == 1 and mail.outbox[0].to == [CONSULTANT]
    new_raw = next(part for part in mail.outbox[0].body.split() if "/invite/" in part).rstrip("/").rsplit("/", 1)[1]
    assert new_raw != old_raw
    assert services.invitation_lookup(old_raw) == (invitation, services.Refusal.SUPERSEDED)
    assert services.invitation_lookup(new_raw) == (invitation, None)
    assert Invitation.objects.get(pk=invitation.pk).expires_at > old_expiry

    # the old link's page refuses (a newer e-mail was sent: tests/accounts/test_invitation_superseded.py);
    # the new one opens the invitation's page
    assert Client().get(f"/invite/{old_raw}/").status_code == 410
    assert Client().get(f"/invite/{new_raw}/").status_code == 200


def test_an_expired_invitation_is_sent_again_with_a_new_expiry(org_a, clinician_a, invitation):
    invitation, _raw = invitation
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    raw = services.invitation_resend(invitation=invitation, by=clinician_a)
    found, refusal = services.invitation_lookup(raw)
    assert found == invitation and refusal is None
    assert found.expires_at > timezone.now() + timedelta(hours=org_a.invitation_ttl_hours - 1)


def test_the_mail_is_the_invitations_own_with_no_patient_data(org_a, clinician_a, invitation, case):
    invitation, _raw = invitation
    raw = services.invitation_resend(invitation=invitation, by=clinician_a)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert f"/invite/{raw}/" in message.body and f"/invite/{raw}/" in message.alternatives[0][0]
    assert mail_patient_leaks(mail.outbox) == []
    for text in (message.subject, message.body, message.alternatives[0][0]):
        assert case.title not in text and case.patient.name not in text and case.patient.mrn not in text
    assert not message.attachments


def test_the_page_offers_it_for_a_pending_invitation_only(org_a, clinician_a, invitation, verified_client):
    invitation, _raw = invitation
    client = verified_client(clinician_a)
    assert _resend_url(invitation).encode() in client.get("/org/invitations/").content
    services.invitation_revoke(invitation=invitation, by=clinician_a)
    assert _resend_url(invitation).encode() not in client.get("/org/invitations/").content


@pytest.mark.parametrize("who", ["colleague", "other_org_admin"])
def test_who_may_not_withdraw_it_may_not_send_it_again(org_a, org_b, who, invitation, verified_client):
    invitation, old_raw = invitation
    user = member(org_a, Role.CLINICIAN, email="clin.b@alpha.example") if who == "colleague" else \
        member(org_b, Role.ORG_ADMIN, email="admin@beta.example")
    assert verified_client(user).post(_resend_url(invitation)).status_code == 404
    with pytest.raises(PermissionDenied):
        services.invitation_resend(invitation=invitation, by=user)
    assert mail.outbox == []
    assert services.invitation_lookup(old_raw) == (invitation, None)  # unchanged
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()


def test_an_admin_may_send_again_a_colleagues_invitation(org_a, admin_a, invitation, verified_client):
    invitation, _raw = invitation
    assert verified_client(admin_a).post(_resend_url(invitation)).status_code == 302
    assert len(mail.outbox) == 1
    assert AuditEvent.objects.get(action="invitation.resent").actor == admin_a


def test_an_inviter_who_may_no_longer_share_the_case_may_not_send_it_again(org_a, clinician_a, invitation):
    invitation, old_raw = invitation
    clinician_a.memberships.update(role=Role.COORDINATOR)  # may still withdraw it; may not share
    with pytest.raises(PermissionDenied):
        services.invitation_resend(invitation=invitation, by=clinician_a)
    assert mail.outbox == [] and services.invitation_lookup(old_raw) == (invitation, None)
    assert services.invitation_revoke(invitation=invitation, by=clinician_a)


@pytest.mark.parametrize("state", ["accepted", "revoked", "locked"])
def test_an_accepted_withdrawn_or_locked_invitation_is_not_sent_again(org_a, clinician_a, invitation, state,
                                                                      verified_client):
    invitation, _raw = invitation
    Invitation.objects.filter(pk=invitation.pk).update(**{f"{state}_at": timezone.now()})
    old_hash = Invitation.objects.get(pk=invitation.pk).token_hash
    with pytest.raises(ValidationError):
        services.invitation_resend(invitation=invitation, by=clinician_a)
    response = verified_client(clinician_a).post(_resend_url(invitation))
    assert response.status_code == 302
    assert any("cannot be sent again" in m for m in _messages(response))
    assert mail.outbox == []
    assert Invitation.objects.get(pk=invitation.pk).token_hash == old_hash
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()


def test_not_twice_within_a_minute(org_a, clinician_a, invitation, verified_client):
    invitation, _raw = invitation
    client = verified_client(clinician_a)
    assert client.post(_resend_url(invitation)).status_code == 302
    first_hash = Invitation.objects.get(pk=invitation.pk).token_hash
    response = client.post(_resend_url(invitation))
    assert any("less than a minute ago" in m for m in _messages(response))
    assert len(mail.outbox) == 1
    assert Invitation.objects.get(pk=invitation.pk).token_hash == first_hash
    assert AuditEvent.objects.filter(action="invitation.resent").count() == 1
    _sent_earlier(invitation)
    assert client.post(_resend_url(invitation)).status_code == 302
    assert len(mail.outbox) == 2


def test_an_expired_invitation_is_not_sent_again_while_another_waits_for_the_address(org_a, clinician_a,
                                                                                   invitation, case):
    invitation, _raw = invitation
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    services.invitation_create(organization=org_a, by=clinician_a, email=CONSULTANT,
                               role=Role.EXTERNAL_CONSULTANT, cases=[case])
    mail.outbox.clear()
    with pytest.raises(ValidationError) as refused:
        services.invitation_resend(invitation=invitation, by=clinician_a)
    assert refused.value.code == "pending"
    assert mail.outbox == []


def test_the_resend_is_recorded(org_a, clinician_a, invitation, verified_client):
    invitation, _raw = invitation
    verified_client(clinician_a).post(_resend_url(invitation))
    event = AuditEvent.objects.get(action="invitation.resent")
    assert event.actor == clinician_a and event.organization_id == org_a.pk and event.outcome == "allowed"
    assert event.details == {"expires_at": Invitation.objects.get(pk=invitation.pk).expires_at.isoformat()}
    assert CONSULTANT not in str(event.details)


def test_a_stale_second_factor_is_asked_for_again(org_a, clinician_a, invitation):
    from tests.accounts.conftest import stale_second_factor_client

    invitation, old_raw = invitation
    client, _device = stale_second_factor_client(clinician_a)
    response = client.post(_resend_url(invitation))
    assert response.status_code == 302 and response.url.startswith("/accounts/mfa/step-up/")
    assert mail.outbox == [] and services.invitation_lookup(old_raw) == (invitation, None)


class _DownMailServer:
    """An e-mail backend whose server cannot be reached (or, below, refuses the recipient)."""

    error: Exception = ConnectionRefusedError(111, "Connection refused")

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise self.error


class _RefusingMailServer(_DownMailServer):
    error = smtplib.SMTPRecipientsRefused({CONSULTANT: (550, b"user unknown")})


def _relay_down(settings, backend="_DownMailServer"):
    settings.EMAIL_BACKEND = f"{__name__}.{backend}"


@pytest.mark.parametrize("backend", ["_DownMailServer", "_RefusingMailServer"])
def test_a_resend_the_relay_refuses_leaves_the_invitation_as_it_was_and_says_so(org_a, clinician_a, invitation,
                                                                                verified_client, settings, backend):
    """The new link reached nobody: the earlier token, expiry and send time are put back, so the
    link in the earlier e-mail works again (a transient mail failure withdrew a working
    invitation), and the sender is told so; it may be sent again at once."""
    invitation, old_raw = invitation
    before = Invitation.objects.filter(pk=invitation.pk).values("token_hash", "expires_at", "sent_at").get()
    client = verified_client(clinician_a)
    _relay_down(settings, backend)
    response = client.post(_resend_url(invitation))
    assert response.status_code == 302
    [text] = _messages(response)
    assert "could not be sent again" in text and "earlier e-mail still works until" in text
    after = Invitation.objects.get(pk=invitation.pk)
    assert after.revoked_at is None
    assert {"token_hash": after.token_hash, "expires_at": after.expires_at, "sent_at": after.sent_at} == before
    assert services.invitation_lookup(old_raw) == (invitation, None)
    assert not AuditEvent.objects.filter(action="invitation.revoked").exists()
    failed = AuditEvent.objects.get(action="invitation.resent", outcome="failed")
    assert failed.details == {"reason": "not_sent", "error": type(globals()[backend].error).__name__,
                              "restored": True}

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert client.post(_resend_url(invitation)).status_code == 302  # not "less than a minute ago"
    assert len(mail.outbox) == 1 and services.invitation_lookup(old_raw)[1] == services.Refusal.SUPERSEDED


def test_an_expired_invitation_the_relay_refuses_stays_expired_and_is_not_withdrawn(org_a, clinician_a,
                                                                                    invitation, settings):
    invitation, old_raw = invitation
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    before = Invitation.objects.filter(pk=invitation.pk).values("token_hash", "expires_at", "sent_at").get()
    _relay_down(settings)
    with pytest.raises(ValidationError) as refused:
        services.invitation_resend(invitation=invitation, by=clinician_a)
    assert "could not be sent again" in refused.value.messages[0]
    assert "still works" not in refused.value.messages[0]
    after = Invitation.objects.get(pk=invitation.pk)
    assert after.revoked_at is None
    assert {"token_hash": after.token_hash, "expires_at": after.expires_at, "sent_at": after.sent_at} == before
    assert services.invitation_lookup(old_raw) == (invitation, services.Refusal.EXPIRED)


# --- a patient's invitation -------------------------------------------------------------------

PATIENT = "patient.one@mail.example"


@pytest.fixture
def patient_invitation(org_a, clinician_a, case):
    """A clinician's patient invitation, sent from their case more than a minute ago, expired."""
    invitation, raw = services.invitation_create(organization=org_a, by=clinician_a, email=PATIENT,
                                                 role=Role.PATIENT, patient=case.patient, case=case)
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now() - timedelta(hours=3),
                                                       expires_at=timezone.now() - timedelta(hours=1))
    mail.outbox.clear()
    invitation.refresh_from_db()
    return invitation, raw


def test_a_patients_inviter_who_may_still_share_the_case_sends_it_again(org_a, clinician_a, patient_invitation):
    invitation, _raw = patient_invitation
    raw = services.invitation_resend(invitation=invitation, by=clinician_a)
    assert services.invitation_lookup(raw) == (invitation, None)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [PATIENT]


@pytest.mark.parametrize("change", ["role", "case_closed"])
def test_a_patients_inviter_who_may_no_longer_share_the_case_may_not_send_it_again(
        org_a, clinician_a, case, patient_invitation, change, verified_client):
    """Sending the invitation again makes a new working link: it takes what making it took
    (SHARE_CASE on the open case it was sent from) from whoever does not manage the members. A
    closed case is refused as such (tests/accounts/test_invitation_patient_case.py)."""
    invitation, old_raw = patient_invitation
    if change == "role":
        clinician_a.memberships.update(role=Role.COORDINATOR)  # may still withdraw it; may not share
        with pytest.raises(PermissionDenied):  # as a new invitation of the patient is refused
            services.invitation_create(organization=org_a, by=clinician_a, email="patient.two@mail.example",
                                       role=Role.PATIENT, patient=case.patient, case=case)
        refusal, said = PermissionDenied, "may no longer give the access"
    else:
        type(case).objects.filter(pk=case.pk).update(status=CaseStatus.CLOSED)
        refusal, said = ValidationError, "The case this invitation was sent from is closed"
    expires = Invitation.objects.get(pk=invitation.pk).expires_at
    with pytest.raises(refusal):
        services.invitation_resend(invitation=invitation, by=clinician_a)
    response = verified_client(clinician_a).post(_resend_url(invitation))
    assert response.status_code == 302
    assert any(said in m for m in _messages(response))
    assert mail.outbox == []
    assert Invitation.objects.get(pk=invitation.pk).expires_at == expires
    assert services.invitation_lookup(old_raw) == (invitation, services.Refusal.EXPIRED)
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()
    if change == "role":
        assert AuditEvent.objects.filter(action="access.denied", actor=clinician_a,
                                         details__wanted="share_case").exists()
    assert services.invitation_revoke(invitation=invitation, by=clinician_a)


def test_who_manages_the_members_may_send_again_a_patients_invitation(org_a, admin_a, patient_invitation):
    invitation, _raw = patient_invitation
    raw = services.invitation_resend(invitation=invitation, by=admin_a)
    assert services.invitation_lookup(raw) == (invitation, None)
