"""The sharing part of the demo (called from apps.core.demo.seed): on the Northwind demo case, a
live second-opinion share to the demo consultant and an expired, never opened telehealth share,
so "My shares" shows states and "Shared with me" has something in it; and a live
patient-education share to the demo patient, so the patient portal shows it. Idempotent."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.accounts.models import User
from apps.cases.models import Case
from apps.organizations.models import Organization
from apps.sharing import services
from apps.sharing.models import Grant
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
