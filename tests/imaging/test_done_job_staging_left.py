"""A job done stays done: its staged file deleted after its commit, a failure of that deletion
is logged and the file left over, never turned into "failed, upload it again"; and a task that
gives up on a job done (what raised came after its commit) leaves it done."""

from __future__ import annotations

import io
import logging

import pytest
from pydicom.uid import generate_uid

from apps.imaging import staging, uploads
from apps.imaging.models import IngestJob, JobState, Study, StudyState, Upload
from apps.imaging.services import ingest_job_fail
from apps.imaging.tasks import ingest_job_run_task
from bench.ingest.synthetic import ct_slice

pytestmark = pytest.mark.django_db


def _received(org, user) -> Upload:
    """An upload of one file, all its bytes received (its job not run yet)."""
    buf = io.BytesIO()
    ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=8, columns=8).save_as(
        buf, enforce_file_format=True)
    data = buf.getvalue()
    upload = uploads.upload_create(organization=org, user=user, length=len(data), filename="a.dcm")
    writer = uploads.upload_writer(upload)
    writer.write(data)
    writer.sync()
    writer.close()
    Upload.objects.filter(pk=upload.pk).update(offset=len(data))
    upload.refresh_from_db()
    return upload


def test_a_staged_file_that_cannot_be_deleted_leaves_the_job_done(org_a, clinician_a, monkeypatch, caplog):
    def unwritable(upload):
        raise PermissionError(13, "Permission denied", str(staging.staging_path(upload.staging_name)))

    monkeypatch.setattr(uploads, "upload_discard_staging", unwritable)
    upload = _received(org_a, clinician_a)
    uploads.upload_complete(upload=upload)
    job = IngestJob.objects.get(upload=upload)
    with caplog.at_level(logging.WARNING, logger="apps.imaging.services"):
        ingest_job_run_task.apply(args=(job.pk,), task_id="first", throw=True)
    job.refresh_from_db()
    assert (job.state, job.failure, job.files_ingested) == (JobState.DONE, None, 1)
    assert Study.objects.get().state == StudyState.READY
    assert staging.staging_path(upload.staging_name).exists()  # left over
    assert "PermissionError" in caplog.text and upload.staging_name not in caplog.text
    ingest_job_run_task.apply(args=(job.pk,), task_id="first", throw=True)  # delivered again: nothing to do
    job.refresh_from_db()
    assert job.state == JobState.DONE


def test_a_task_giving_up_on_a_job_done_leaves_it_done(org_a, clinician_a):
    upload = _received(org_a, clinician_a)
    uploads.upload_complete(upload=upload)
    job = IngestJob.objects.get(upload=upload)
    ingest_job_run_task.apply(args=(job.pk,), task_id="first", throw=True)
    job.refresh_from_db()
    assert job.state == JobState.DONE
    ingest_job_fail(job_id=job.pk, error="PermissionError", task_id="a-late-message")
    ingest_job_fail(job_id=job.pk, error="OSError")
    job.refresh_from_db()
    assert (job.state, job.error, job.failure) == (JobState.DONE, "", None)
    assert Study.objects.get().state == StudyState.READY
