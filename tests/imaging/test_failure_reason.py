"""An ingest that fails as a whole tells its uploader why and what to do: the upload's status JSON
carries a stable code and a message in the reader's language (by the type of error the task gave
up on, never its text), and the upload and study pages show the message."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.imaging import staging
from apps.imaging.models import IngestJob, JobState, Upload
from apps.imaging.openapi import JOB_FAILURE, UPLOAD_STATUS
from apps.imaging.services import ingest_job_create, ingest_job_fail, ingest_job_run
from apps.imaging.tasks import ingest_job_run_task
from apps.organizations.models import Role
from tests.factories import CaseFactory, member
from tests.imaging.test_storage_down import storage_unwritable
from tests.imaging.test_tus import ROOT, TUS, _meta, _patch

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(radiologist_client):
    return radiologist_client


def _uploaded(client, small_ct) -> tuple[str, IngestJob]:
    """A file sent whole; its ingest job is queued (the test runs the task)."""
    data = sorted(small_ct.iterdir())[0].read_bytes()
    r = client.post(ROOT, HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_UPLOAD_METADATA=_meta(filename="one.dcm"), **TUS)
    url = r["Location"].split("testserver", 1)[-1]
    assert _patch(client, url, 0, data).status_code == 204
    return url, IngestJob.objects.get(upload__public_id=url.rstrip("/").rsplit("/", 1)[-1])


def _give_up(job: IngestJob) -> None:
    ingest_job_run_task.apply(args=(job.pk,), retries=ingest_job_run_task.max_retries, throw=False)
    job.refresh_from_db()
    assert job.state == JobState.FAILED


def test_storage_that_kept_failing_is_named_with_the_resume_command(client, small_ct, tmp_path):
    url, job = _uploaded(client, small_ct)
    with storage_unwritable(tmp_path):
        _give_up(job)
    failure = client.get(url).json()["job"]["failure"]
    assert failure["code"] == "storage_unavailable"
    assert "storage" in failure["message"] and f"manage.py ingest --resume {job.public_id}" in failure["message"]
    ingest_job_run(job_id=job.pk)  # the promise holds: the staged file was kept, nothing to send again
    status = client.get(url).json()["job"]
    assert (status["state"], status["failure"]) == (JobState.DONE, None)


def test_a_staged_file_that_is_gone_asks_to_upload_it_again(client, small_ct):
    url, job = _uploaded(client, small_ct)
    staging.staging_path(Upload.objects.get(pk=job.upload_id).staging_name).unlink()
    _give_up(job)
    status = client.get(url).json()["job"]
    assert status["failure"]["code"] == "upload_unreadable"
    assert "upload it again" in status["failure"]["message"]
    assert set(status["failure"]) == set(JOB_FAILURE["properties"])


def test_an_unexpected_error_gives_a_reference_never_its_text(client, small_ct, monkeypatch):
    url, job = _uploaded(client, small_ct)

    def broken(job):
        raise ValueError("Doe^Jane 1970-01-01")  # what an error may quote: never shown

    monkeypatch.setattr("apps.imaging.services._entries", broken)
    _give_up(job)
    failure = client.get(url).json()["job"]["failure"]
    assert failure["code"] == "unexpected" and str(job.public_id) in failure["message"]
    assert "Doe" not in failure["message"] and "ValueError" not in failure["message"]


def test_the_upload_page_lists_the_failed_upload_with_its_reason(client, small_ct):
    _url, job = _uploaded(client, small_ct)
    staging.staging_path(Upload.objects.get(pk=job.upload_id).staging_name).unlink()
    _give_up(job)
    recent = client.get("/studies/upload/").content.decode()
    assert job.failure.message in recent


def test_the_study_page_shows_why_its_ingest_failed(client, org_a, small_ct):
    """A job that stored a study and then gave up before it ended (here: told so directly, as the
    task does; a job done is never failed afterwards, so it is made running again first)."""
    job = ingest_job_create(organization=org_a, source_path=str(small_ct), case=CaseFactory(organization=org_a),
                            enqueue=False, created_by=None)
    ingest_job_run(job_id=job.pk)
    IngestJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    ingest_job_fail(job_id=job.pk, error="StorageUnavailable")
    job.refresh_from_db()
    page = client.get(job.studies.get().get_absolute_url()).content.decode()
    assert f"manage.py ingest --resume {job.public_id}" in page


def test_a_job_that_did_not_fail_has_no_failure(client, small_ct):
    url, job = _uploaded(client, small_ct)
    ingest_job_run(job_id=job.pk)
    status = client.get(url).json()
    assert status["job"]["failure"] is None
    assert set(UPLOAD_STATUS["properties"]["job"]["properties"]) <= set(status["job"])


def test_in_process_tasks_a_retried_ingest_that_gave_up_ends_the_upload_without_a_server_error(
        org_a, small_ct, tmp_path, django_capture_on_commit_callbacks):
    """The embedded default runs tasks in the request (Celery eager): the ingest's retries run
    there too, and Celery then raises its Retry to the caller. The last PATCH still answers 204,
    and the job says why it failed."""
    c = Client(raise_request_exception=False)
    c.force_login(member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"))
    data = sorted(small_ct.iterdir())[0].read_bytes()
    r = c.post(ROOT, HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_UPLOAD_METADATA=_meta(filename="one.dcm"), **TUS)
    url = r["Location"].split("testserver", 1)[-1]
    with storage_unwritable(tmp_path), django_capture_on_commit_callbacks(execute=True):
        assert _patch(c, url, 0, data).status_code == 204
    status = c.get(url).json()["job"]
    assert (status["state"], status["failure"]["code"]) == (JobState.FAILED, "storage_unavailable")
