"""A patient invitation records the case it was sent from (``Invitation.case``): a closed case's
patient is not invited from it, and "Send again" asks again of that case, not of any other case
of the patient, that it is open and still the sender's to share. Accepting it gives what it gave
(a patient membership, no share of the case)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Invitation
from apps.audit.models import AuditEvent
from apps.cases.models import CaseStatus
from apps.organizations.models import Membership, Role
from apps.sharing.models import Grant
from tests.factories import CaseFactory, GrantFactory, UserFactory, member

pytestmark = pytest.mark.django_db

PATIENT = "patient.one@mail.example"


@pytest.fixture
def case(org_a, clinician_a):
    return CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)


@pytest.fixture
def other_case(org_a, clinician_a, case):
    """Another open case of the same patient, which the same clinician may share."""
    return CaseFactory(organization=org_a, patient=case.patient, created_by=clinician_a,
                       responsible_clinician=clinician_a)


def _invite(org, by, case, email=PATIENT):
    invitation, raw = services.invitation_create(organization=org, by=by, email=email, role=Role.PATIENT,
                                                 patient=case.patient, case=case)
    # sent more than a minute ago: "Send again" is not held back by its one-a-minute limit
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now() - timedelta(minutes=5))
    mail.outbox.clear()
    invitation.refresh_from_db()
    return invitation, raw


def _close(case):
    type(case).objects.filter(pk=case.pk).update(status=CaseStatus.CLOSED)


def _resend_url(invitation):
    return f"/org/invitations/{invitation.public_id}/resend/"


def _messages(response):
    return [str(m) for m in response.wsgi_request._messages]


def test_a_patient_invitation_records_the_case_it_was_sent_from(org_a, clinician_a, case, other_case):
    invitation, _raw = _invite(org_a, clinician_a, case)
    assert Invitation.objects.get(pk=invitation.pk).case == case
    # a member invitation records none (its cases are its ``cases``)
    consultant, _raw = services.invitation_create(organization=org_a, by=clinician_a, email="ext@stmarys.example",
                                                  role=Role.EXTERNAL_CONSULTANT, cases=[case])
    assert Invitation.objects.get(pk=consultant.pk).case is None


def test_a_closed_cases_patient_is_not_invited_from_it(org_a, clinician_a, case, verified_client):
    _close(case)
    case.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        services.invitation_create(organization=org_a, by=clinician_a, email=PATIENT, role=Role.PATIENT,
                                   patient=case.patient, case=case)
    assert refused.value.code == "case_closed"
    # the page says so on its form
    client = verified_client(clinician_a)
    response = client.post(f"/cases/{case.public_id}/invite-patient/", {"email": PATIENT, "language": "en"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "This case is closed, so its patient cannot be invited from it." in text
    assert not Invitation.objects.exists() and mail.outbox == []
    assert not AuditEvent.objects.filter(action="invitation.created").exists()
    # and before anything is typed: the page says so, with no form (QA: it refused only once sent)
    page = client.get(f"/cases/{case.public_id}/invite-patient/")
    text = page.content.decode()
    assert page.status_code == 200 and 'data-testid="case-closed"' in text and 'name="email"' not in text


def test_send_again_is_not_offered_for_an_invitation_whose_case_closed(
        org_a, clinician_a, case, other_case, verified_client):
    """QA: the invitations page offered Send again on an invitation whose own case had closed,
    always refused; Withdraw stays."""
    closed, _raw = _invite(org_a, clinician_a, case)
    _close(case)
    page = verified_client(clinician_a).get("/org/invitations/").content.decode()
    assert _resend_url(closed) not in page
    assert f"/org/invitations/{closed.public_id}/revoke/" in page


def test_send_again_asks_that_the_recorded_case_is_still_open_not_another(
        org_a, clinician_a, admin_a, case, other_case, verified_client):
    """The patient's other case is open and the clinician may share it: it was enough to send
    again an invitation whose own case was closed."""
    invitation, old_raw = _invite(org_a, clinician_a, case)
    old_hash = invitation.token_hash
    _close(case)
    for sender in (clinician_a, admin_a):  # whoever sends it: a closed case's patient is not invited
        with pytest.raises(ValidationError) as refused:
            services.invitation_resend(invitation=Invitation.objects.get(pk=invitation.pk), by=sender)
        assert refused.value.code == "case_closed"
    response = verified_client(clinician_a).post(_resend_url(invitation))
    assert response.status_code == 302
    assert any("The case this invitation was sent from is closed" in m for m in _messages(response))
    assert mail.outbox == []
    assert Invitation.objects.get(pk=invitation.pk).token_hash == old_hash
    # its link still opens, on the refusal its closed case makes (accepting it asks the case too)
    assert services.invitation_lookup(old_raw) == (invitation, services.Refusal.CASE_CLOSED)
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()
    # reopened, it is sent again
    type(case).objects.filter(pk=case.pk).update(status=CaseStatus.OPEN)
    raw = services.invitation_resend(invitation=Invitation.objects.get(pk=invitation.pk), by=clinician_a)
    assert services.invitation_lookup(raw) == (invitation, None) and len(mail.outbox) == 1


def test_send_again_asks_that_the_sender_may_still_share_the_recorded_case_not_another(org_a):
    """A consultant who may reshare two cases of one patient invited the patient from one of
    them; that share revoked, the other still lets them share its case: the invitation is not
    theirs to send again (the denial recorded), as a new one from that case would not be."""
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="ext.two@stmarys.example")
    case = CaseFactory(organization=org_a)
    other = CaseFactory(organization=org_a, patient=case.patient)
    share = GrantFactory(organization=org_a, case=case, grantee=consultant, permissions=["view", "reshare"])
    GrantFactory(organization=org_a, case=other, grantee=consultant, permissions=["view", "reshare"])
    invitation, _raw = _invite(org_a, consultant, case)
    assert services.invitation_resend(invitation=invitation, by=consultant)  # while they may share it
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now() - timedelta(minutes=5))
    Grant.objects.filter(pk=share.pk).update(revoked_at=timezone.now())
    mail.outbox.clear()
    before = Invitation.objects.get(pk=invitation.pk).token_hash
    with pytest.raises(PermissionDenied):
        services.invitation_resend(invitation=Invitation.objects.get(pk=invitation.pk), by=consultant)
    assert mail.outbox == [] and Invitation.objects.get(pk=invitation.pk).token_hash == before
    assert AuditEvent.objects.filter(action="access.denied", actor=consultant, details__wanted="share_case").exists()


def test_an_invitation_recording_no_case_is_not_sent_again(org_a, clinician_a, admin_a, case, verified_client):
    """One made before invitations recorded their case (or whose case was deleted): no case to
    ask of, so not its inviter's to send again (any case of the patient no longer does), nor
    anyone's: its acceptance is refused (tests/accounts/test_invitation_patient_case_accept.py),
    so a new link would not work either (an administrator's Send again sent one). The page offers
    Withdraw only."""
    invitation, raw = _invite(org_a, clinician_a, case)
    Invitation.objects.filter(pk=invitation.pk).update(case=None)
    for sender in (clinician_a, admin_a):
        with pytest.raises(ValidationError) as refused:
            services.invitation_resend(invitation=Invitation.objects.get(pk=invitation.pk), by=sender)
        assert refused.value.code == "no_case" and mail.outbox == []
    assert services.invitation_lookup(raw) == (invitation, services.Refusal.CASE_CLOSED)
    page = verified_client(admin_a).get("/org/invitations/").content.decode()
    assert _resend_url(invitation) not in page
    assert f"/org/invitations/{invitation.public_id}/revoke/" in page


def test_accepting_it_gives_a_patient_membership_and_no_share_of_the_case(org_a, clinician_a, case):
    """Recording the case widens nothing: the patient's portal shows what is shared with them."""
    invitation, _raw = _invite(org_a, clinician_a, case)
    user = UserFactory(email=PATIENT)
    accepted = services.invitation_accept(invitation=invitation, user=user)
    assert accepted.grants == [] and accepted.cases_not_given == 0
    assert not Grant.objects.filter(grantee=user).exists()
    assert Membership.objects.get(user=user, organization=org_a).role == Role.PATIENT


def test_a_closed_cases_invite_page_asks_for_no_code_first(org_a, clinician_a, case, settings):
    """A reviewer: with the step-up lapsed, the closed case's page asked for a code and only then
    said the case is closed; it acts on nothing, so it says so at once."""
    from tests.accounts.conftest import stale_second_factor_client

    settings.LIGHTBOX_MFA_ENFORCED = True
    _close(case)
    client, _device = stale_second_factor_client(clinician_a)
    page = client.get(f"/cases/{case.public_id}/invite-patient/")
    assert page.status_code == 200 and 'data-testid="case-closed"' in page.content.decode()


def test_a_patient_with_no_birth_date_is_not_invited_and_the_page_leads_to_correcting_it(
        org_a, clinician_a, case, settings):
    """QA: with the patient's date of birth not recorded (optional when a case is made) the
    invitation page refused on sending, after a code was asked, with no way on; it says so at once
    and links to the correction page (for who may correct it) and back to the case."""
    from tests.accounts.conftest import stale_second_factor_client

    case.patient.birth_date = None
    case.patient.save(update_fields=["birth_date"])
    with pytest.raises(ValidationError) as refused:
        _invite(org_a, clinician_a, case)
    assert refused.value.code == "birth_date_missing"
    settings.LIGHTBOX_MFA_ENFORCED = True
    client, _device = stale_second_factor_client(clinician_a)
    page = client.get(f"/cases/{case.public_id}/invite-patient/")
    text = page.content.decode()
    assert page.status_code == 200 and 'data-testid="no-birth-date"' in text and 'name="email"' not in text
    assert f'href="/cases/{case.public_id}/patient/"' in text and case.get_absolute_url() in text
    posted = client.post(f"/cases/{case.public_id}/invite-patient/", {"email": PATIENT, "language": "en"})
    assert posted.status_code == 400 and 'data-testid="no-birth-date"' in posted.content.decode()
    assert not Invitation.objects.filter(email=PATIENT).exists() and not mail.outbox
