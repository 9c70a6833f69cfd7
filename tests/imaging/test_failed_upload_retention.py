"""A failed ingest keeps its upload's encrypted staged file so that ``manage.py ingest --resume``
can finish it, but not for ever: LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS (14) after the failure the
sweep discards it, recorded; from then on the job's failure asks the uploader to upload again,
and ``--resume`` says plainly that the file is gone."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.imaging import staging
from apps.imaging.models import IngestJob, JobState, Upload
from apps.imaging.services import ingest_job_fail
from apps.imaging.tasks import failed_uploads_discard_task, ingest_job_run_task
from apps.imaging.uploads import failed_uploads_discard
from tests.imaging.test_failure_reason import _uploaded

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(radiologist_client):
    return radiologist_client


def _failed(client, small_ct, days_ago: float):
    url, job = _uploaded(client, small_ct)
    ingest_job_fail(job_id=job.pk, error="StorageUnavailable")
    IngestJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    job.refresh_from_db()
    return url, job, staging.staging_path(Upload.objects.get(pk=job.upload_id).staging_name)


def test_the_staged_file_of_a_failed_ingest_is_discarded_after_its_retention(client, small_ct, settings):
    settings.LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS = 14
    url, job, path = _failed(client, small_ct, days_ago=13)
    assert failed_uploads_discard() == 0 and path.exists()  # still kept for --resume
    assert "manage.py ingest --resume" in client.get(url).json()["job"]["failure"]["message"]
    IngestJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=14, minutes=1))
    assert failed_uploads_discard_task() == 1
    assert not path.exists()
    job.refresh_from_db()
    assert job.upload_discarded_at is not None and job.state == JobState.FAILED
    [event] = AuditEvent.objects.filter(action="imaging.upload_discarded")
    assert (event.organization_id, event.target_id) == (job.organization_id, str(job.upload.public_id))
    assert event.details["job"] == str(job.public_id) and event.details["kept_days"] == 14
    failure = client.get(url).json()["job"]["failure"]
    assert failure["code"] == "upload_discarded"
    assert "upload it again" in failure["message"] and "14 days" in failure["message"]
    assert "--resume" not in failure["message"]
    assert failed_uploads_discard() == 0  # once
    assert AuditEvent.objects.filter(action="imaging.upload_discarded").count() == 1


def test_a_discard_that_fails_leaves_the_job_for_the_next_sweep(client, small_ct, monkeypatch):
    """Storage down at the discard: the job was marked discarded all the same, its file kept for
    ever and its uploader told to upload again while --resume could still have finished it."""
    from apps.imaging import uploads

    url, job, path = _failed(client, small_ct, days_ago=15)
    real = uploads.upload_discard_staging

    def storage_down(upload):
        raise PermissionError("storage refused")

    monkeypatch.setattr(uploads, "upload_discard_staging", storage_down)
    assert failed_uploads_discard() == 0
    job.refresh_from_db()
    assert job.upload_discarded_at is None and path.exists()
    assert not AuditEvent.objects.filter(action="imaging.upload_discarded").exists()
    assert "manage.py ingest --resume" in client.get(url).json()["job"]["failure"]["message"]
    monkeypatch.setattr(uploads, "upload_discard_staging", real)
    assert failed_uploads_discard() == 1 and not path.exists()


def test_resume_says_plainly_that_the_staged_file_is_gone(client, small_ct):
    _url, job, _path = _failed(client, small_ct, days_ago=15)
    failed_uploads_discard()
    with pytest.raises(CommandError, match=r"uploaded file was discarded on .* nothing left to resume"):
        call_command("ingest", resume=str(job.public_id), no_progress=True, stdout=io.StringIO())
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.FAILED, 0)  # not run


def test_a_late_task_message_leaves_a_discarded_job_alone(client, small_ct):
    _url, job, _path = _failed(client, small_ct, days_ago=15)
    IngestJob.objects.filter(pk=job.pk).update(error="NeverStarted")  # the lost-task sweep had given up
    failed_uploads_discard()
    ingest_job_run_task.apply(args=(job.pk,), throw=True)
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.FAILED, 0)


def test_a_job_resumed_meanwhile_and_jobs_that_did_not_fail_keep_their_files(client, small_ct):
    _url, resumed, path = _failed(client, small_ct, days_ago=15)
    IngestJob.objects.filter(pk=resumed.pk).update(state=JobState.RUNNING)  # --resume took it first
    _url, queued = _uploaded(client, small_ct)
    IngestJob.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(days=30))
    assert failed_uploads_discard() == 0
    assert path.exists()
    assert staging.staging_path(Upload.objects.get(pk=queued.upload_id).staging_name).exists()


def test_the_discard_is_on_the_schedule():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"apps.imaging.tasks.failed_uploads_discard_task", "apps.imaging.tasks.ingest_jobs_lost_send_task",
            "apps.renditions.tasks.study_renditions_lost_send_task"} <= tasks
