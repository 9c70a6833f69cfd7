from __future__ import annotations

import pytest

from apps.core.demo import seed
from apps.imaging.models import Blob, Instance, Study

pytestmark = pytest.mark.django_db


def test_seed_demo_ingests_studies_on_the_chest_ct_case_idempotently():
    seed()
    studies = Study.objects.filter(case__title="Chest CT - second opinion", organization__slug="northwind")
    assert studies.count() >= 3
    assert all(s.is_ready for s in studies)
    assert {"CT", "MR"} <= {m for s in studies for m in s.modality_list}
    counts = (Study.objects.count(), Instance.objects.count(), Blob.objects.count())
    seed()
    assert (Study.objects.count(), Instance.objects.count(), Blob.objects.count()) == counts
