"""Sending an invitation again (the invitations page's "Send again"), for an invitee who lost the
e-mail or let it expire: a new link and a new expiry; the old link stops working; the e-mail is the
invitation's own (no patient data); refused for an accepted, withdrawn or locked invitation, to whoever
may not withdraw it, and within a minute of the last e-mail; recorded in the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Invitation
from apps.audit.models import AuditEvent
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
    assert services.invitation_lookup(old_raw) == (None, services.Refusal.UNKNOWN)
    assert services.invitation_lookup(new_raw) == (invitation, None)
    assert Invitation.objects.get(pk=invitation.pk).expires_at > old_expiry

    # the old link's page refuses; the new one opens the invitation's page
    assert Client().get(f"/invite/{old_raw}/").status_code == 404
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


def test_a_resend_the_relay_refuses_withdraws_it_and_says_so(org_a, clinician_a, invitation, verified_client,
                                                             settings):
    """The old link is dead and the new one reached nobody: the invitation is withdrawn, as when
    its first e-mail could not be sent, and the sender is told."""
    invitation, old_raw = invitation
    client = verified_client(clinician_a)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 3
    response = client.post(_resend_url(invitation))
    assert response.status_code == 302
    assert any("could not be sent" in m for m in _messages(response))
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None
    assert services.invitation_lookup(old_raw)[0] is None
    assert AuditEvent.objects.filter(action="invitation.revoked", outcome="failed").exists()
