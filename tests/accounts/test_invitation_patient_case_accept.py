"""Accepting a patient invitation asks again of its case (``Invitation.case``, the one it was sent
from), as sending it again does (23a60a3, 302133d): a case closed, or deleted, after the e-mail
left, or no longer its inviter's to share, refuses the invitation, on a page that says what
happened and whom to contact, the refusal recorded (``invitation.refused``) as the others are.
Accepting went through and gave portal access (found by a reviewer)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Invitation, User
from apps.audit.models import AuditEvent
from apps.cases import services as case_services
from apps.cases.models import Case
from apps.organizations.models import Membership, Role
from apps.sharing.services import grant_create, grants_revoke
from tests.factories import CaseFactory, PatientFactory, UserFactory, member

pytestmark = pytest.mark.django_db

PATIENT = "pat.accept@home.example"
BIRTH_DATE = "1961-04-02"
PASSWORD = "a-long-enough-passphrase-42"
CLOSED_TEXT = "The case this invitation was sent for has been closed or is no longer available"
CONTACT_TEXT = "contact the care team that invited you"


@pytest.fixture
def case(org_a, clinician_a):
    patient = PatientFactory(organization=org_a, birth_date=date(1961, 4, 2))
    return CaseFactory(organization=org_a, patient=patient, created_by=clinician_a,
                       responsible_clinician=clinician_a)


def _invite(org, by, case):
    return services.invitation_create(organization=org, by=by, email=PATIENT, role=Role.PATIENT,
                                      patient=case.patient, case=case)


def _url(raw):
    return f"/invite/{raw}/"


def _refusals():
    return list(AuditEvent.objects.filter(action="invitation.refused").values_list("details__reason", flat=True))


def _says_case_closed(response):
    text = response.content.decode()
    assert response.status_code == 410, response.status_code
    assert 'data-reason="case_closed"' in text and CLOSED_TEXT in text and CONTACT_TEXT in text


def test_the_link_of_an_invitation_whose_case_closed_since_says_so_and_gives_nothing(org_a, clinician_a, case):
    invitation, raw = _invite(org_a, clinician_a, case)
    case_services.case_close(case=case, by=clinician_a)

    _says_case_closed(Client().get(_url(raw)))
    assert _refusals() == ["case_closed"]
    event = AuditEvent.objects.get(action="invitation.refused")
    assert (event.outcome, event.organization_id, event.target_id) == ("denied", org_a.pk, str(invitation.public_id))
    # the service refuses it too, whoever calls it: nothing given, the invitation still unused
    user = UserFactory(email=PATIENT)
    with pytest.raises(ValidationError) as refused:
        services.invitation_accept(invitation=Invitation.objects.get(pk=invitation.pk), user=user)
    assert refused.value.code == services.Refusal.CASE_CLOSED
    assert Invitation.objects.get(pk=invitation.pk).accepted_at is None
    assert not Membership.objects.filter(user=user).exists()
    # reopened, the same invitation is accepted (the refusal is of the moment, not for good)
    case_services.case_reopen(case=Case.objects.get(pk=case.pk), by=clinician_a)
    services.invitation_accept(invitation=Invitation.objects.get(pk=invitation.pk), user=user)
    assert Membership.objects.get(user=user, organization=org_a).role == Role.PATIENT


def test_a_case_closed_between_opening_the_link_and_accepting_refuses_the_acceptance(org_a, clinician_a, case):
    """The patient proved their date of birth while the case was open, then it closed: the
    account's form, sent after, makes no account, no membership, and says why."""
    _invitation, raw = _invite(org_a, clinician_a, case)
    browser = Client()
    assert browser.post(_url(raw), {"step": "birth_date", "birth_date": BIRTH_DATE}).status_code == 302
    assert b'name="password1"' in browser.get(_url(raw)).content  # the account's form, offered
    case_services.case_close(case=case, by=clinician_a)

    response = browser.post(_url(raw), {"step": "account", "full_name": "Pat Home",
                                        "password1": PASSWORD, "password2": PASSWORD})
    _says_case_closed(response)
    assert not User.objects.filter(email=PATIENT).exists()
    assert _refusals() == ["case_closed"]


def test_signed_in_the_acceptance_of_an_invitation_whose_case_closed_is_refused(org_a, clinician_a, case):
    """Someone with an account (say a patient of another organization) signed in: the acceptance
    itself reads the case again (``invitation_accept``), once the page was offered."""
    invitation, raw = _invite(org_a, clinician_a, case)
    user = User.objects.create_user(email=PATIENT, password=PASSWORD)
    browser = Client()
    assert browser.post(_url(raw), {"step": "birth_date", "birth_date": BIRTH_DATE}).status_code == 302
    browser.force_login(user)
    assert browser.get(_url(raw)).status_code == 200
    Case.objects.filter(pk=case.pk).update(status="closed", closed_at=timezone.now())  # closed meanwhile

    _says_case_closed(browser.post(_url(raw), {"step": "accept"}))
    assert not Membership.objects.filter(user=user).exists()
    assert Invitation.objects.get(pk=invitation.pk).accepted_at is None
    assert _refusals() == ["case_closed"]


def test_an_invitation_whose_case_was_deleted_is_refused(org_a, clinician_a, case):
    invitation, raw = _invite(org_a, clinician_a, case)
    Case.objects.filter(pk=case.pk).delete()
    assert Invitation.objects.get(pk=invitation.pk).case is None  # SET_NULL: the invitation stays

    _says_case_closed(Client().get(_url(raw)))
    with pytest.raises(ValidationError) as refused:
        services.invitation_accept(invitation=Invitation.objects.get(pk=invitation.pk), user=UserFactory(email=PATIENT))
    assert refused.value.code == services.Refusal.CASE_CLOSED
    assert not Membership.objects.filter(user__email=PATIENT).exists()


def test_an_invitation_whose_inviter_lost_the_share_of_its_case_is_refused(org_a, clinician_a, case):
    """A consultant who might reshare the case invited its patient; their share revoked, the
    invitation is no longer theirs to give (as sending it again asks: SHARE_CASE on that case)."""
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="ext.reshare@stmarys.example")
    share = grant_create(case=case, grantee=consultant, permissions=["view", "reshare"],
                         expires_at=timezone.now() + timedelta(days=3), by=clinician_a)
    invitation, raw = _invite(org_a, consultant, case)
    grants_revoke(grants=[share], by=clinician_a, reason="revoked")
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is None  # still pending

    response = Client().get(_url(raw))
    assert response.status_code == 403 and b"can no longer give the access" in response.content
    assert _refusals() == ["inviter_rights"]
    user = UserFactory(email=PATIENT)
    with pytest.raises(ValidationError) as refused:
        services.invitation_accept(invitation=Invitation.objects.get(pk=invitation.pk), user=user)
    assert refused.value.code == services.Refusal.INVITER_RIGHTS
    assert not Membership.objects.filter(user=user).exists()


def test_an_open_cases_invitation_is_accepted_as_before(org_a, clinician_a, case):
    _invitation, raw = _invite(org_a, clinician_a, case)
    browser = Client()
    assert browser.post(_url(raw), {"step": "birth_date", "birth_date": BIRTH_DATE}).status_code == 302
    response = browser.post(_url(raw), {"step": "account", "full_name": "Pat Home",
                                        "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert Membership.objects.get(user__email=PATIENT, organization=org_a).role == Role.PATIENT
    assert _refusals() == []


def test_the_acceptance_reads_the_case_again_not_the_one_the_page_read(org_a, clinician_a, case):
    """The page's request read the invitation and its open case; the case closes before the
    acceptance's transaction: it is read there again, and the acceptance refused."""
    invitation, _raw = _invite(org_a, clinician_a, case)
    read = Invitation.objects.select_related("case").get(pk=invitation.pk)
    assert read.case.is_open
    Case.objects.filter(pk=case.pk).update(status="closed", closed_at=timezone.now())
    user = UserFactory(email=PATIENT)
    with pytest.raises(ValidationError) as refused:
        services.invitation_accept(invitation=read, user=user)
    assert refused.value.code == services.Refusal.CASE_CLOSED
    assert not Membership.objects.filter(user=user).exists()
