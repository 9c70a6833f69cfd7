"""What ended uploads left in the staging folder is swept: a job done whose staged file could not be
deleted after its commit (it stays done: tests/imaging/test_done_job_staging_left.py), an upload
cancelled or expired while the staging folder was not there, a file no upload names. Before, nothing
deleted those files ever, and rotate_keys did not re-wrap their keys. What an upload still needs
(arriving, its job queued, running, or failed and kept for ``--resume``) is kept."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from apps.imaging import staging, uploads
from apps.imaging.models import IngestJob, JobState, Upload, UploadState
from apps.imaging.services import ingest_job_fail
from apps.imaging.tasks import ingest_job_run_task, staging_leftovers_delete_task
from apps.imaging.uploads import staging_leftovers_delete
from tests.imaging.test_done_job_staging_left import _received

pytestmark = pytest.mark.django_db


@pytest.fixture
def folder(tmp_path, settings) -> Path:
    settings.LIGHTBOX_UPLOAD_DIR = str(tmp_path / "uploads")
    return Path(settings.LIGHTBOX_UPLOAD_DIR)


def _files(upload: Upload) -> list[Path]:
    return sorted(staging.staging_dir().glob(f"{upload.staging_name}*"))


def _done_with_leftover(org, user, monkeypatch) -> Upload:
    """An upload ingested (its job done) whose staged file could not be deleted after the commit."""
    upload = _received(org, user)
    uploads.upload_complete(upload=upload)
    real = uploads.upload_discard_staging
    with monkeypatch.context() as patch:
        def unwritable(upload):
            raise PermissionError(13, "Permission denied")

        patch.setattr(uploads, "upload_discard_staging", unwritable)
        ingest_job_run_task.apply(args=(IngestJob.objects.get(upload=upload).pk,), throw=True)
    assert uploads.upload_discard_staging is real
    assert IngestJob.objects.get(upload=upload).state == JobState.DONE
    assert _files(upload)  # left over
    return upload


def test_a_done_jobs_leftover_is_swept_and_what_uploads_need_is_kept(folder, org_a, clinician_a, monkeypatch):
    done = _done_with_leftover(org_a, clinician_a, monkeypatch)
    arriving = _received(org_a, clinician_a)
    failed = _received(org_a, clinician_a)
    uploads.upload_complete(upload=failed)
    ingest_job_fail(job_id=IngestJob.objects.get(upload=failed).pk, error="StorageUnavailable")  # kept for --resume
    queued = _received(org_a, clinician_a)
    uploads.upload_complete(upload=queued)

    assert staging_leftovers_delete_task() == 1
    assert _files(done) == []
    assert all(_files(u) for u in (arriving, failed, queued))
    assert (folder / staging.MARKER).is_file()
    assert uploads.upload_open(arriving).read()  # still readable
    assert staging_leftovers_delete() == 0


def test_an_upload_ended_while_the_folder_was_away_is_swept_once_it_is_back(folder, org_a, clinician_a):
    cancelled = _received(org_a, clinician_a)
    expired = _received(org_a, clinician_a)
    Upload.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    away = folder.with_name("away")
    folder.rename(away)
    assert uploads.upload_terminate(upload=cancelled, by=clinician_a)
    assert uploads.uploads_expire() == 1
    assert staging_leftovers_delete() == 0 and not folder.exists()  # not there: nothing swept, nothing made
    away.rename(folder)
    assert _files(cancelled) and _files(expired)
    assert staging_leftovers_delete() == 2
    assert _files(cancelled) == [] and _files(expired) == []
    assert set(Upload.objects.values_list("state", flat=True)) == {UploadState.TERMINATED, UploadState.EXPIRED}


def test_a_file_no_upload_names_is_swept_once_a_day_old(folder, org_a, clinician_a):
    uploads.staging_ready()
    fresh = staging.staging_create("made-just-before-its-row.part")
    stale = staging.staging_create("a-killed-process.part")
    stale.with_name(stale.name + ".iv").write_bytes(b"\0" * 16)
    day_old = time.time() - 25 * 3600
    for path in (stale, stale.with_name(stale.name + ".iv")):
        os.utime(path, (day_old, day_old))
    assert staging_leftovers_delete() == 1
    assert fresh.exists() and not stale.exists() and not stale.with_name(stale.name + ".iv").exists()
    assert (folder / staging.MARKER).is_file()


def test_rotate_keys_deletes_a_done_jobs_leftover_first(folder, org_a, clinician_a, monkeypatch, settings):
    key = django_settings.LIGHTBOX_MASTER_KEYS
    done = _done_with_leftover(org_a, clinician_a, monkeypatch)
    arriving = _received(org_a, clinician_a)
    settings.LIGHTBOX_MASTER_KEYS = f"rotated:{'A' * 43}=,{key}"
    out = io.StringIO()
    call_command("rotate_keys", stdout=out, stderr=io.StringIO())
    assert "deleted the staging files that 1 ended upload(s) had left" in out.getvalue()
    assert _files(done) == [] and _files(arriving)
    arriving.refresh_from_db()
    assert arriving.key_id == "rotated"


def test_the_sweep_is_on_the_schedule():
    tasks = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert "apps.imaging.tasks.staging_leftovers_delete_task" in tasks
