from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.organizations.models import Role
from bench.frames_synthetic import store_ct_phantom
from tests.factories import CaseFactory, StudyFactory, member

SLICES = 20


def make_ct_study(org, clinician):
    """A case of ``clinician`` holding a 20-slice 128x128 CT phantom (bench/frames_synthetic.py)."""
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician)
    study = StudyFactory(organization=org, case=case, study_description="Phantom CT")
    study.phantom_instances = store_ct_phantom(study=study, slices=SLICES, rows=128, columns=128)
    return study


def make_preview_recipient(org, owner, study):
    """An external consultant holding a live grant to view and download previews only."""
    from apps.sharing import services

    recipient = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    recipient.grant = services.grant_create(case=study.case, grantee=recipient,
                                            permissions=["view", "download_preview"], by=owner,
                                            renditions=["preview"], download_limit=5,
                                            expires_at=timezone.now() + timedelta(hours=24))
    return recipient


@pytest.fixture
def ct_study(org_a, clinician_a):
    return make_ct_study(org_a, clinician_a)


@pytest.fixture
def preview_recipient(org_a, clinician_a, ct_study):
    return make_preview_recipient(org_a, clinician_a, ct_study)
