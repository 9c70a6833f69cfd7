"""Storage that cannot be reached while renditions are made: the task retries (as on a full
disk) instead of failing, and no file is marked unavailable for it."""

from __future__ import annotations

import pytest
from celery.exceptions import Retry

from apps.renditions.models import RenditionFile, Status
from apps.renditions.tasks import study_renditions_task
from tests.renditions.conftest import ingest_folder
from tests.storage_outages import S3_UNREACHABLE

pytestmark = pytest.mark.django_db


def test_renditions_retry_while_object_storage_cannot_be_reached(org_a, small_ct, settings):
    [study] = ingest_folder(small_ct, org_a)
    settings.STORAGES = {**settings.STORAGES, "default": S3_UNREACHABLE}
    with pytest.raises(Retry):
        study_renditions_task.apply(args=(study.pk,), retries=0)
    assert not RenditionFile.objects.filter(study=study, status=Status.UNAVAILABLE).exists()
