"""The staging folder not there (its volume not mounted, or the folder moved away) is not one
upload's staging file lost: PATCH, HEAD and POST answer 503 with Retry-After, no upload is expired,
the folder is not made again empty (the uploads' files are on the volume), and every upload resumes
once it is back. A staging file gone from the folder that is there is still 410
(tests/imaging/test_tus_staging_lost.py). The folder holds a marker (``staging.MARKER``) from when
it was made, which tells it from an empty mount point."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.imaging import staging, uploads
from apps.imaging.models import IngestJob, JobState, Upload, UploadState
from apps.imaging.services import ingest_job_run
from apps.imaging.tasks import ingest_job_run_task
from apps.organizations.models import Role
from tests.factories import IngestJobFactory, member
from tests.imaging.test_tus import ROOT, TUS, _meta, _patch

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(org_a):
    c = Client(raise_request_exception=False)
    c.force_login(member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"))
    return c


@pytest.fixture
def folder(tmp_path, settings) -> Path:
    """A staging folder of its own, not made yet (a new installation)."""
    settings.LIGHTBOX_UPLOAD_DIR = str(tmp_path / "volume" / "uploads")
    return Path(settings.LIGHTBOX_UPLOAD_DIR)


@pytest.fixture
def data(small_ct) -> bytes:
    return sorted(small_ct.iterdir())[0].read_bytes()


def _create(client, length: int):
    return client.post(ROOT, HTTP_UPLOAD_LENGTH=str(length), HTTP_UPLOAD_METADATA=_meta(filename="a.dcm"), **TUS)


def _half_sent(client, data: bytes) -> tuple[str, Upload]:
    url = _create(client, len(data))["Location"].split("testserver", 1)[-1]
    assert _patch(client, url, 0, data[:500]).status_code == 204
    return url, Upload.objects.get(public_id=url.rstrip("/").rsplit("/", 1)[-1])


def _unavailable(response) -> None:
    """tus's 503 (plain text, Tus-Resumable), which clients retry, the upload kept."""
    assert response.status_code == 503 and response["Retry-After"] == "60"
    assert response["Tus-Resumable"] == "1.0.0" and response["Content-Type"].startswith("text/plain")


def _kept(upload: Upload) -> None:
    upload.refresh_from_db()
    assert (upload.state, upload.offset) == (UploadState.UPLOADING, 500)
    assert not AuditEvent.objects.filter(action="imaging.upload_expired").exists()


def test_a_new_installation_makes_and_marks_its_staging_folder(client, folder):
    assert not folder.exists()
    assert _create(client, 10).status_code == 201
    assert (folder / staging.MARKER).is_file()
    assert staging.staging_path(Upload.objects.get().staging_name).is_file()


def test_the_staging_folder_moved_away_mid_upload_is_a_503_and_the_upload_resumes_once_back(client, folder, data):
    url, upload = _half_sent(client, data)
    away = folder.with_name("away")
    folder.rename(away)
    response = _patch(client, url, 500, data[500:])
    _unavailable(response)
    assert b"resumes where it stopped" in response.content
    _unavailable(client.head(url, **TUS))
    _unavailable(_create(client, 10))  # no new upload either: its folder would be made where the volume is missing
    assert not folder.exists()  # not made again
    assert Upload.objects.count() == 1
    _kept(upload)
    away.rename(folder)
    assert client.head(url, **TUS)["Upload-Offset"] == "500"
    assert _patch(client, url, 500, data[500:]).status_code == 204
    upload.refresh_from_db()
    assert upload.state == UploadState.COMPLETE
    assert uploads.upload_open(upload).read() == data


def test_an_empty_folder_where_the_volume_should_be_is_a_503(client, folder, data):
    """The volume not mounted: its mount point, an empty folder, is seen instead."""
    url, upload = _half_sent(client, data)
    away = folder.with_name("away")
    folder.rename(away)
    folder.mkdir()
    _unavailable(_patch(client, url, 500, data[500:]))
    _unavailable(client.head(url, **TUS))
    _unavailable(_create(client, 10))
    assert list(folder.iterdir()) == []  # nothing written on the mount point, no marker made
    _kept(upload)
    folder.rmdir()
    away.rename(folder)
    assert _patch(client, url, 500, data[500:]).status_code == 204
    assert Upload.objects.get().state == UploadState.COMPLETE


def test_a_folder_without_its_marker_that_holds_files_is_the_staging_folder(client, folder, data):
    """Staged in before folders were marked: marked as it is, its uploads go on."""
    url, _upload = _half_sent(client, data)
    (folder / staging.MARKER).unlink()
    assert client.head(url, **TUS)["Upload-Offset"] == "500"
    assert (folder / staging.MARKER).is_file()
    assert _patch(client, url, 500, data[500:]).status_code == 204


def test_an_empty_folder_is_marked_once_no_upload_is_staged(client, folder, data):
    url, _upload = _half_sent(client, data)
    assert client.delete(url, **TUS).status_code == 204
    (folder / staging.MARKER).unlink()
    assert list(folder.iterdir()) == []
    assert _create(client, 10).status_code == 201  # every upload had ended: this folder is the one
    assert (folder / staging.MARKER).is_file()


def test_cancelling_or_expiring_while_the_folder_is_away_ends_the_upload(client, folder, data):
    """The end is committed and recorded; what the upload staged is left on the volume."""
    cancelled_url, cancelled = _half_sent(client, data)
    _url, expired = _half_sent(client, data)
    Upload.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    away = folder.with_name("away")
    folder.rename(away)
    assert client.delete(cancelled_url, **TUS).status_code == 204
    assert uploads.uploads_expire() == 1
    cancelled.refresh_from_db()
    expired.refresh_from_db()
    assert (cancelled.state, expired.state) == (UploadState.TERMINATED, UploadState.EXPIRED)
    assert AuditEvent.objects.filter(action__in=["imaging.upload_deleted", "imaging.upload_expired"]).count() == 2
    assert not folder.exists()


def test_an_ingest_while_the_folder_is_away_fails_as_storage_and_resumes(client, folder, data):
    url = _create(client, len(data))["Location"].split("testserver", 1)[-1]
    assert _patch(client, url, 0, data).status_code == 204
    job = IngestJob.objects.get()
    away = folder.with_name("away")
    folder.rename(away)
    ingest_job_run_task.apply(args=(job.pk,), retries=ingest_job_run_task.max_retries, throw=False)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.failure.code == "storage_unavailable"  # not "upload it again"
    away.rename(folder)
    assert ingest_job_run(job_id=job.pk).state == JobState.DONE


def _complete_with_job(upload: Upload, state: str, *, failed_days_ago: float | None = None) -> IngestJob:
    Upload.objects.filter(pk=upload.pk).update(state=UploadState.COMPLETE, completed_at=timezone.now())
    finished = timezone.now() - timedelta(days=failed_days_ago) if failed_days_ago is not None else None
    return IngestJobFactory(organization_id=upload.organization_id, upload=upload, state=state, finished_at=finished)


def _gone(folder: Path) -> None:
    """The folder lost for good (the host rebuilt, var/ wiped): not there, nor its files."""
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def test_a_failed_jobs_file_past_its_keep_period_is_discarded_without_the_folder(client, folder, data, settings):
    """A lost staging folder and one failed job kept for ``--resume`` blocked every new upload (503)
    for good: the discard raised StagingUnavailable and rolled its claim back, so the job counted as
    staged for ever and the folder was never made again. Past its keep period its file is not used
    any more: the job is discarded (recorded), and once nothing is staged uploads are taken again."""
    settings.LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS = 14
    _url, upload = _half_sent(client, data)
    job = _complete_with_job(upload, JobState.FAILED, failed_days_ago=15)
    _gone(folder)
    _unavailable(_create(client, 10))

    assert uploads.failed_uploads_discard() == 1
    job.refresh_from_db()
    assert job.upload_discarded_at is not None
    [event] = AuditEvent.objects.filter(action="imaging.upload_discarded")
    assert event.details["staging_unavailable"] is True
    assert not uploads.uploads_staged().exists()
    assert _create(client, 10).status_code == 201  # made again, marked
    assert (folder / staging.MARKER).is_file()


def test_a_discarded_jobs_file_is_swept_once_the_folder_is_back(client, folder, data, settings):
    settings.LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS = 14
    _url, upload = _half_sent(client, data)
    _complete_with_job(upload, JobState.FAILED, failed_days_ago=15)
    away = folder.with_name("away")
    folder.rename(away)
    assert uploads.failed_uploads_discard() == 1
    away.rename(folder)
    assert (folder / upload.staging_name).exists()
    assert uploads.staging_leftovers_delete() == 1
    assert not (folder / upload.staging_name).exists()


def test_an_operator_declares_a_lost_staging_folder_lost(client, folder, data, org_a):
    """Uploads that can still go on (one arriving, a job queued, a failed job within its keep
    period) keep a missing folder from being made again: its volume may only be unmounted. When it
    is really lost, ``manage.py staging_lost --yes`` ends them, recorded, and makes it again."""
    _url, arriving = _half_sent(client, data)
    _url, queued = _half_sent(client, data)
    queued_job = _complete_with_job(queued, JobState.QUEUED)
    _url, failed = _half_sent(client, data)
    failed_job = _complete_with_job(failed, JobState.FAILED, failed_days_ago=1)  # kept for --resume
    with pytest.raises(CommandError, match="nothing is lost"):
        call_command("staging_lost", "--yes")
    _gone(folder)
    _unavailable(_create(client, 10))
    assert uploads.failed_uploads_discard() == 0  # within its keep period
    with pytest.raises(CommandError, match="--yes"):
        call_command("staging_lost")
    assert uploads.uploads_staged().count() == 3 and not folder.exists()

    out = io.StringIO()
    call_command("staging_lost", "--yes", stdout=out)

    assert "1 upload(s) expired, 1 ingest job(s) failed, 2 failed upload(s) discarded" in out.getvalue()
    arriving.refresh_from_db()
    assert arriving.state == UploadState.EXPIRED
    for job in (queued_job, failed_job):
        job.refresh_from_db()
        assert job.state == JobState.FAILED and job.upload_discarded_at is not None
    assert AuditEvent.objects.get(action="imaging.upload_expired").details["staging_lost"] is True
    assert AuditEvent.objects.filter(action="imaging.upload_discarded", details__staging_lost=True).count() == 2
    assert not uploads.uploads_staged().exists()
    assert (folder / staging.MARKER).is_file()
    assert _create(client, 10).status_code == 201


def test_the_schema_documents_the_503_of_head():
    from apps.imaging.openapi import STAGING_UNAVAILABLE, _upload_path

    assert _upload_path()["head"]["responses"]["503"] == STAGING_UNAVAILABLE
