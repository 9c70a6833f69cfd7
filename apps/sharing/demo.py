"""The sharing part of the demo (called from apps.core.demo.seed): on the Northwind demo case, a
live second-opinion share to the demo consultant and an expired, never opened telehealth share,
so "My shares" shows states and "Shared with me" has something in it; a live patient-education
share to the demo patient (their account linked to the case's patient as their accepted invitation
links it), so the patient portal shows it; and, on Northwind's second case (the
brain MR), a live preview-only telehealth share to the demo consultant under which they asked for
the original DICOM (through the request service, as the form does), so that the consultant's
"Shared with me" says the request waits for a decision and the clinician who shared it finds it
under "Requests for the original DICOM" in "My shares". That share is on the second case because
the second-opinion share already lets the consultant download the chest CT's original, and the
policy refuses a request for what one can download already. Idempotent."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.accounts.models import User
from apps.cases.models import Case
from apps.organizations.models import Organization
from apps.sharing import policy, services
from apps.sharing.models import Grant, OriginalRequest
from apps.sharing.usecases import TEMPLATES, UseCase


def seed_shares(org: Organization, domain: str) -> None:
    from apps.cases.demo import DEMO_CASE_TITLE

    case = Case.objects.filter(organization=org, title=DEMO_CASE_TITLE).first()
    consultant = User.objects.filter(email=f"consultant@{domain}").first()
    sharer = User.objects.filter(email=f"clinician@{domain}").first()
    if case is None or consultant is None or sharer is None or not case.is_open:
        return
    now = timezone.now()
    mine = Grant.objects.filter(case=case, grantee=consultant, created_by=sharer)
    second = TEMPLATES[UseCase.SECOND_OPINION]
    if not mine.live().filter(use_case=UseCase.SECOND_OPINION).exists():
        grant = services.grant_create(
            case=case, grantee=consultant, permissions=second.permissions, renditions=second.renditions,
            expires_at=now + timedelta(hours=second.default_hours), by=sharer, use_case=UseCase.SECOND_OPINION)
        services.share_link_create(grant=grant, by=sharer)
    patient = User.objects.filter(email=f"patient@{domain}").first()
    if patient is not None:
        _link_demo_patient(case, patient, by=sharer)
    education = TEMPLATES[UseCase.PATIENT_EDUCATION]
    if patient is not None and not Grant.objects.filter(
            case=case, grantee=patient, use_case=UseCase.PATIENT_EDUCATION).live().exists():
        grant = services.grant_create(
            case=case, grantee=patient, permissions=education.permissions, renditions=education.renditions,
            expires_at=now + timedelta(hours=education.default_hours), by=sharer,
            use_case=UseCase.PATIENT_EDUCATION)
        services.share_link_create(grant=grant, by=sharer)
    if not mine.filter(use_case=UseCase.TELEHEALTH).exists():
        triage = TEMPLATES[UseCase.TELEHEALTH]
        grant = services.grant_create(
            case=case, grantee=consultant, permissions=triage.permissions, renditions=triage.renditions,
            starts_at=now - timedelta(days=2), expires_at=now - timedelta(days=2) + timedelta(hours=8), by=sharer,
            use_case=UseCase.TELEHEALTH)
        services.share_link_create(grant=grant, by=sharer)
    _seed_pending_original_request(org, consultant=consultant, sharer=sharer)


def _link_demo_patient(case: Case, patient: User, *, by: User) -> None:
    """The demo patient's portal account linked to the demo case's patient, as accepting the patient
    invitation sent from the case links it (``policy.is_case_patients_account``): a patient-education
    share gives only that account anything. An accepted invitation row, made once (its token is a
    random digest nobody holds: it was never sent)."""
    import hashlib
    import secrets

    from apps.accounts.models import Invitation, InvitationKind
    from apps.organizations.models import Role

    if Invitation.objects.filter(kind=InvitationKind.PATIENT, patient=case.patient, accepted_by=patient,
                                 accepted_at__isnull=False).exists():
        return
    now = timezone.now()
    Invitation.objects.create(
        organization=case.organization, kind=InvitationKind.PATIENT, email=patient.email, role=Role.PATIENT,
        patient=case.patient, case=case, created_by=by, expires_at=now, sent_at=now, accepted_at=now,
        accepted_by=patient, token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest())


#: what the demo consultant wrote when asking for the original (generated text, no patient data)
ORIGINAL_REQUEST_REASON = ("The compressed preview is not enough to tell recurrence from treatment effect; "
                           "I need the original series to compare the enhancement with the prior study.")


def _seed_pending_original_request(org: Organization, *, consultant: User, sharer: User) -> None:
    """A live telehealth triage share (previews only) of Northwind's second case to the consultant,
    and their request for the original under it, waiting for a decision. Made once per live share:
    a request already made under it (pending or since decided in the demo) is left as it is."""
    from apps.cases.demo import CASES

    case = Case.objects.filter(organization=org, title=CASES[1]["title"]).first()
    if case is None or not case.is_open:
        return
    triage = TEMPLATES[UseCase.TELEHEALTH]
    grant = (Grant.objects.filter(case=case, grantee=consultant, created_by=sharer, use_case=UseCase.TELEHEALTH)
             .live().order_by("-created_at").first())
    if grant is None:
        # the template's longest expiry (24 h), so that the demo lasts the day it is shown
        grant = services.grant_create(
            case=case, grantee=consultant, permissions=triage.permissions, renditions=triage.renditions,
            expires_at=timezone.now() + timedelta(hours=triage.max_hours), by=sharer, use_case=UseCase.TELEHEALTH)
        services.share_link_create(grant=grant, by=sharer)
    if OriginalRequest.objects.filter(grant=grant, requested_by=consultant).exists():
        return
    # asked of the policy first, so that a seed over a demo someone changed (the case's originals
    # since shared with the consultant another way) skips the request instead of failing
    if policy.original_request_refusal(consultant, grant) is None:
        services.original_request_create(grant=grant, by=consultant, reason=ORIGINAL_REQUEST_REASON)
