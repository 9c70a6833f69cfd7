"""The link between a patient's portal account and their patient record that accepting a patient
invitation makes (``apps.accounts.services``: an accepted invitation of kind patient naming the
patient), for tests that share a case's patient-education copy with its patient's own account."""

from __future__ import annotations

from django.utils import timezone

from apps.accounts.models import InvitationKind
from apps.organizations.models import Role
from tests.factories import InvitationFactory


def link_patient_account(user, patient, *, case=None):
    """``user``'s account linked to ``patient`` (a cases.Patient) as their accepted invitation links
    it; returns the invitation."""
    now = timezone.now()
    return InvitationFactory(organization=patient.organization, kind=InvitationKind.PATIENT, email=user.email,
                             role=Role.PATIENT, patient=patient, case=case, accepted_at=now, accepted_by=user)


def linked_patient_record(user, organization):
    """The patient (a cases.Patient of ``organization``) ``user``'s account is linked to, made and
    linked when there is none yet: cases shared with that account by patient-education shares are
    to be of this patient."""
    from apps.accounts.models import Invitation
    from tests.factories import PatientFactory

    found = Invitation.objects.filter(kind=InvitationKind.PATIENT, accepted_by=user, accepted_at__isnull=False,
                                      organization=organization, patient__isnull=False).first()
    if found is not None:
        return found.patient
    patient = PatientFactory(organization=organization)
    link_patient_account(user, patient)
    return patient
