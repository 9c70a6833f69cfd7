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


def test_renditions_the_task_gave_up_on_say_so_and_are_made_once_storage_is_back(org_a, small_ct, settings):
    """After the last retry the study page said "Being made" for ever."""
    from apps.renditions.models import Rendition
    from apps.renditions.services import study_renditions_make

    [study] = ingest_folder(small_ct, org_a)
    stored = settings.STORAGES
    settings.STORAGES = {**stored, "default": S3_UNREACHABLE}
    study_renditions_task.apply(args=(study.pk,), retries=study_renditions_task.max_retries, throw=False)
    renditions = Rendition.objects.filter(study=study)
    assert renditions.exists()
    assert {r.status for r in renditions} == {Status.UNAVAILABLE}
    assert all("An administrator can make it again" in r.reason_shown for r in renditions)
    settings.STORAGES = stored
    study_renditions_make(study_id=study.pk)  # what manage.py renditions does
    assert {r.status for r in Rendition.objects.filter(study=study)} == {Status.READY}
