"""Storage that cannot be written (here: a file where the storage root's folder should be) during
an ingest: the task retries, and when it gives up the job and its study say failed instead of
running for ever; nothing is lost: the job finishes once storage is back (``ingest --resume``)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from celery.exceptions import Retry
from django.test import override_settings

from apps.imaging.models import JobState
from apps.imaging.services import ingest_job_create, ingest_job_run
from apps.imaging.tasks import ingest_job_run_task
from tests.factories import CaseFactory
from tests.storage_outages import S3_UNREACHABLE

pytestmark = pytest.mark.django_db

TASK_ID = "6f1c0e7e-0000-4000-8000-000000000001"  # one task's message: its retries keep its id


@contextmanager
def storage_unwritable(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the storage root's folder should be")
    storages = {
        "default": {
            "BACKEND": "apps.imaging.storage.DirectFileSystemStorage",
            "OPTIONS": {"location": str(blocker / "root")},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        yield


def test_an_ingest_that_storage_keeps_failing_ends_failed_and_finishes_once_storage_is_back(org_a, small_ct, tmp_path):
    job = ingest_job_create(
        organization=org_a, source_path=str(small_ct), case=CaseFactory(organization=org_a), enqueue=False
    )
    with storage_unwritable(tmp_path):
        with pytest.raises(Retry):  # transient: tried again later
            ingest_job_run_task.apply(args=(job.pk,), retries=0, task_id=TASK_ID)
        job.refresh_from_db()
        assert job.state == JobState.RUNNING
        last = ingest_job_run_task.apply(args=(job.pk,), retries=ingest_job_run_task.max_retries, throw=False,
                                         task_id=TASK_ID)  # a retry keeps its task's id
    assert last.failed()
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, "StorageUnavailable")  # not "running" for ever
    ingest_job_run(job_id=job.pk)  # storage is back: what manage.py ingest --resume does
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.studies.get().num_instances == 6


def test_object_storage_that_cannot_be_reached_is_retried_not_failed_at_once(org_a, small_ct, settings):
    """S3-compatible storage whose endpoint refuses connections (nothing listens on port 1): the
    ingest retries as it does on a full disk; it failed at once, as if the files were bad."""
    settings.STORAGES = {**settings.STORAGES, "default": S3_UNREACHABLE}
    job = ingest_job_create(
        organization=org_a, source_path=str(small_ct), case=CaseFactory(organization=org_a), enqueue=False
    )
    with pytest.raises(Retry):
        ingest_job_run_task.apply(args=(job.pk,), retries=0, task_id=TASK_ID)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING
    ingest_job_run_task.apply(args=(job.pk,), retries=ingest_job_run_task.max_retries, throw=False, task_id=TASK_ID)
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, "StorageUnavailable")
