from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.organizations.models import Role
from bench.frames_synthetic import store_ct_phantom
from tests.browser.conftest import browser, page  # noqa: F401 - Chromium fixtures for test_browser.py
from tests.factories import CaseFactory, StudyFactory, member

SLICES = 20


@pytest.fixture
def ct_study(org_a, clinician_a):
    """A case of clinician_a holding a 20-slice 128x128 CT phantom (bench/frames_synthetic.py)."""
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    study = StudyFactory(organization=org_a, case=case, study_description="Phantom CT")
    instances = store_ct_phantom(study=study, slices=SLICES, rows=128, columns=128)
    study.phantom_instances = instances
    return study


@pytest.fixture
def preview_recipient(org_a, clinician_a, ct_study):
    """An external consultant holding a live grant to view and download previews only."""
    from apps.sharing import services

    recipient = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    grant = services.grant_create(case=ct_study.case, grantee=recipient, permissions=["view", "download_preview"],
                                  by=clinician_a, renditions=["preview"], download_limit=5,
                                  expires_at=timezone.now() + timedelta(hours=24))
    recipient.grant = grant
    return recipient
