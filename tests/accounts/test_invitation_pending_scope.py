"""Which pending invitation stops a new one. Since 3b722b0 any pending invitation to an address
in the organization stopped every other, whoever sent it and whatever its kind: a clinician could
not invite a consultant to their case while a colleague's invitation to the same consultant
waited, and was told to withdraw it on the invitations page (where it is not listed for them, and
which they may not do); a consultant invitation to an address with a pending patient invitation
was refused with the patient invitation's address and expiry (a patient the inviter may not
see); and a guardian's address could not be invited for a second child. Now an invitation stops
another of the same kind to the same address (and, for a patient, the same patient); for an
inviter who does not manage members, only their own does, and the refusal speaks of theirs."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from apps.accounts import services
from apps.accounts.models import Invitation, InvitationKind
from apps.organizations.models import Role
from tests.conftest import mail_patient_leaks
from tests.factories import CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db

CONSULTANT = "ext.one@stmarys.example"
HOME = "family@home.example"


@pytest.fixture
def clinician_b(org_a):
    return member(org_a, Role.CLINICIAN, email="clin.b@alpha.example")


def _case(org, owner, patient=None):
    extra = {"patient": patient} if patient is not None else {}
    return CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, **extra)


def _consultant_invite(org, by, case, email=CONSULTANT):
    return services.invitation_create(organization=org, by=by, email=email, role=Role.EXTERNAL_CONSULTANT,
                                      cases=[case])[0]


def _patient_invite(org, by, case, email=HOME):
    return services.invitation_create(organization=org, by=by, email=email, role=Role.PATIENT,
                                      patient=case.patient, case=case)[0]


def test_a_colleagues_pending_invitation_does_not_stop_a_clinicians_own(org_a, clinician_a, clinician_b,
                                                                          verified_client):
    _consultant_invite(org_a, clinician_a, _case(org_a, clinician_a))
    case_b = _case(org_a, clinician_b)
    client = verified_client(clinician_b)
    form = {"email": CONSULTANT, "role": Role.EXTERNAL_CONSULTANT, "cases": [case_b.pk], "language": "en"}
    assert client.post("/org/invitations/new/", form).status_code == 302
    assert Invitation.objects.filter(email=CONSULTANT).pending().count() == 2
    assert len(mail.outbox) == 2

    # their own still stops a second one, and the refusal speaks of theirs, which they may withdraw
    again = client.post("/org/invitations/new/", form)
    assert again.status_code == 400
    page = again.content.decode()
    assert f"You already invited {CONSULTANT}; your invitation is waiting to be accepted" in page
    assert "An invitation to" not in page
    mine = Invitation.objects.get(created_by=clinician_b)
    assert client.post(f"/org/invitations/{mine.public_id}/revoke/").status_code == 302
    assert client.post("/org/invitations/new/", form).status_code == 302


def test_a_pending_patient_invitation_neither_stops_nor_is_told_to_a_consultant_invitation(
        org_a, clinician_a, clinician_b):
    patient = PatientFactory(organization=org_a)
    _patient_invite(org_a, clinician_a, _case(org_a, clinician_a, patient))
    # another clinician, who may not see that patient, and the patient's own clinician
    for inviter in (clinician_b, clinician_a):
        invitation = _consultant_invite(org_a, inviter, _case(org_a, inviter), email=HOME)
        assert invitation.kind == InvitationKind.MEMBER
    assert Invitation.objects.filter(email=HOME).pending().count() == 3
    assert mail_patient_leaks(mail.outbox) == []


def test_a_guardians_address_may_be_invited_for_each_patient(org_a, clinician_a):
    first, second = PatientFactory(organization=org_a), PatientFactory(organization=org_a)
    case_1, case_2 = _case(org_a, clinician_a, first), _case(org_a, clinician_a, second)
    _patient_invite(org_a, clinician_a, case_1)
    _patient_invite(org_a, clinician_a, case_2)
    assert {i.patient_id for i in Invitation.objects.filter(email=HOME).pending()} == {first.pk, second.pk}
    # the same patient again is still refused
    with pytest.raises(ValidationError) as refused:
        _patient_invite(org_a, clinician_a, _case(org_a, clinician_a, first))
    assert refused.value.code == "pending"
    assert Invitation.objects.filter(email=HOME).count() == 2


def test_an_admin_is_stopped_by_anyones_pending_invitation_of_the_kind(org_a, admin_a, clinician_a):
    """An org admin sees every invitation on the invitations page and may withdraw it: any pending
    member invitation to the address stops theirs, and the refusal says so."""
    _consultant_invite(org_a, clinician_a, _case(org_a, clinician_a))
    with pytest.raises(ValidationError) as refused:
        services.invitation_create(organization=org_a, by=admin_a, email=CONSULTANT, role=Role.RADIOLOGIST)
    assert refused.value.code == "pending"
    assert f"An invitation to {CONSULTANT} is already waiting to be accepted" in refused.value.messages[0]
    assert "withdraw it first on the invitations page" in refused.value.messages[0]

    # a patient invitation is another kind: it stops no staff invitation, even an admin's
    patient = PatientFactory(organization=org_a)
    _patient_invite(org_a, clinician_a, _case(org_a, clinician_a, patient))
    services.invitation_create(organization=org_a, by=admin_a, email=HOME, role=Role.RADIOLOGIST)
    assert Invitation.objects.filter(email=HOME).pending().count() == 2
