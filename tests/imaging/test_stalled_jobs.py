"""An ingest job whose run stopped partway and whose message is gone too (its worker died while
a broker restarted without its messages) stays running and never finishes. A worker killed alone
is not this: the broker delivers its message again (test_worker_crash.py). Each batch the run
commits is its sign of life (``IngestJob.heartbeat_at``); the lost-task sweep
(``ingest_jobs_lost_send``) sends a job with none for ``LIGHTBOX_INGEST_STALLED_MINUTES`` again,
releasing it so that the new message takes it over and resumes it. A run still alive after all
loses the job: its next commit rolls back and it stops, so one job never has two runs writing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core import queue
from apps.imaging import services
from apps.imaging.models import Blob, IngestJob, Instance, JobState, Study, StudyState
from apps.imaging.services import ingest_job_fail, ingest_job_run, ingest_jobs_lost_send
from apps.imaging.tasks import ingest_job_run_task
from tests.brokers import broker_in_memory
from tests.imaging.test_failure_reason import _uploaded
from tests.imaging.test_tus import ROOT, TUS, _meta, _patch

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(radiologist_client):
    return radiologist_client


def _zip_uploaded(client, small_ct_zip) -> tuple[str, IngestJob]:
    """The small CT zip (6 files) sent whole; its ingest job is queued (the test runs it)."""
    data = small_ct_zip.read_bytes()
    r = client.post(ROOT, HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_UPLOAD_METADATA=_meta(filename="study.zip"), **TUS)
    url = r["Location"].split("testserver", 1)[-1]
    assert _patch(client, url, 0, data).status_code == 204
    return url, IngestJob.objects.get(upload__public_id=url.rstrip("/").rsplit("/", 1)[-1])


def _silent_for(job: IngestJob, minutes: float, *, task_id: str = "dead-message") -> None:
    """The job runs under ``task_id`` and its last batch was committed ``minutes`` ago."""
    now = timezone.now()
    IngestJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, task_id=task_id, attempts=1,
                                               started_at=now - timedelta(minutes=minutes + 5),
                                               heartbeat_at=now - timedelta(minutes=minutes))


def _age(job: IngestJob, minutes: float) -> None:
    """No batch committed, nor the job sent again, for ``minutes``."""
    then = timezone.now() - timedelta(minutes=minutes)
    IngestJob.objects.filter(pk=job.pk).update(heartbeat_at=then, resent_at=then)


def _stored_files() -> set[Path]:
    return {p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}


def test_a_job_silent_past_the_period_is_taken_over_and_finished(client, small_ct, settings, caplog):
    settings.LIGHTBOX_INGEST_STALLED_MINUTES = 30
    url, job = _uploaded(client, small_ct)
    _silent_for(job, 29)
    assert ingest_jobs_lost_send() == (0, 0)  # a batch may take this long: not yet
    _silent_for(job, 31)
    assert ingest_jobs_lost_send() == (1, 0)  # tasks run in-process here: sent again = run
    job.refresh_from_db()
    assert (job.state, job.resends, job.attempts) == (JobState.DONE, 1, 2)
    assert job.task_id not in ("", "dead-message") and job.studies.get().num_instances == 1
    assert client.get(url).json()["job"]["state"] == JobState.DONE
    assert f"task {ingest_job_run_task.name} {job.pk}: stalled; sent again (1 of 3)" in caplog.text
    assert "one.dcm" not in caplog.text  # ids only
    assert ingest_jobs_lost_send() == (0, 0)


def test_a_job_long_running_that_commits_its_batches_is_left_alone(client, small_ct, settings):
    """Its start is long past; its last batch is not."""
    settings.LIGHTBOX_INGEST_STALLED_MINUTES = 30
    _url, job = _uploaded(client, small_ct)
    _silent_for(job, 2)
    IngestJob.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=5))
    with broker_in_memory():
        assert ingest_jobs_lost_send() == (0, 0)
    job.refresh_from_db()
    assert (job.state, job.task_id, job.resends) == (JobState.RUNNING, "dead-message", 0)


def test_each_batch_committed_is_a_sign_of_life(client, small_ct_zip, monkeypatch):
    monkeypatch.setattr(services, "BATCH_FILES", 2)
    _url, job = _zip_uploaded(client, small_ct_zip)
    seen: list = []

    def progress(files, nbytes):  # called as each file joins a batch; batches commit in between
        seen.append(IngestJob.objects.values_list("heartbeat_at", flat=True).get(pk=job.pk))

    ingest_job_run(job_id=job.pk, task_id="message", progress=progress)
    beats = sorted(set(seen))
    assert len(beats) >= 3 and all(b is not None for b in beats)  # the claim, then each batch


def test_a_run_that_lost_its_job_stops_at_its_next_commit_which_rolls_back(client, small_ct_zip, monkeypatch):
    """The sweep released the job (or --resume took it) while the old run was still alive, mid
    batch: the old run's commit finds the job is not its own, rolls back (no rows, no blob files)
    and stops without failing the job; the new message finishes it with no duplicates."""
    monkeypatch.setattr(services, "BATCH_FILES", 2)
    _url, job = _zip_uploaded(client, small_ct_zip)
    files_before = _stored_files()
    calls = 0

    def taken_over_after_the_first_batch(files, nbytes):
        nonlocal calls
        calls += 1
        if calls == 4:  # the first batch (2 files) committed, the second's blobs being written
            IngestJob.objects.filter(pk=job.pk).update(task_id="")  # the sweep's release

    old = ingest_job_run(job_id=job.pk, task_id="old-message", progress=taken_over_after_the_first_batch)
    assert (old.state, old.error) == (JobState.RUNNING, "")
    assert job.files.count() == 2 and Instance.objects.filter(study__ingest_jobs=job).count() == 2
    kept = _stored_files()
    assert len(kept - files_before) == 2  # the first batch's blobs; the second's were deleted
    ingest_job_run_task.apply(args=(job.pk,), task_id="new-message", throw=True)
    job.refresh_from_db()
    assert (job.state, job.task_id, job.files.count()) == (JobState.DONE, "new-message", 6)
    study = job.studies.get()
    assert study.num_instances == 6 and Blob.objects.count() == 6
    assert len(_stored_files() - files_before) == 6
    assert AuditEvent.objects.filter(action="imaging.ingest", target_id=str(job.public_id)).count() == 1


def test_a_run_taken_over_before_it_finishes_leaves_the_finish_to_the_new_run(client, small_ct):
    """Every batch committed, then the job taken over: the old run's finish rolls back (no study
    made ready, no record), and the new run finishes it once."""
    _url, job = _uploaded(client, small_ct)
    calls = 0

    def taken_over_at_the_end(files, nbytes):
        nonlocal calls
        calls += 1
        if calls == 2:  # the last call: after every batch committed, before the finish
            IngestJob.objects.filter(pk=job.pk).update(task_id="")

    old = ingest_job_run(job_id=job.pk, task_id="old-message", progress=taken_over_at_the_end)
    assert old.state == JobState.RUNNING and job.files.count() == 1
    assert Study.objects.get(ingest_jobs=job).state == StudyState.PROCESSING
    assert not AuditEvent.objects.filter(action="imaging.ingest", target_id=str(job.public_id)).exists()
    ingest_job_run_task.apply(args=(job.pk,), task_id="new-message", throw=True)
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.studies.get().state == StudyState.READY
    assert AuditEvent.objects.filter(action="imaging.ingest", target_id=str(job.public_id)).count() == 1


def test_resume_takes_the_job_over_from_any_run(client, small_ct):
    """``manage.py ingest --resume`` runs under a lease of its own: the old message, delivered
    again afterwards, finds the job done; had it still been running, it would have lost it."""
    _url, job = _uploaded(client, small_ct)
    _silent_for(job, 1, task_id="first-message")
    done = ingest_job_run(job_id=job.pk)
    assert done.state == JobState.DONE and done.task_id.startswith("resume-")
    ingest_job_run_task.apply(args=(job.pk,), task_id="first-message", throw=True)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.files.count()) == (JobState.DONE, 2, 1)


def test_a_task_giving_up_after_its_job_was_taken_over_does_not_fail_it(client, small_ct):
    _url, job = _uploaded(client, small_ct)
    _silent_for(job, 1, task_id="new-message")
    ingest_job_fail(job_id=job.pk, error="StorageUnavailable", task_id="old-message")
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.RUNNING, "")
    ingest_job_fail(job_id=job.pk, error="StorageUnavailable", task_id="new-message")
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, "StorageUnavailable")


def test_stalled_every_time_it_is_failed_with_the_reason_and_resume_finishes_it(
        client, small_ct_zip, settings, monkeypatch):
    settings.LIGHTBOX_INGEST_STALLED_MINUTES = 30
    monkeypatch.setattr(services, "BATCH_FILES", 2)
    url, job = _zip_uploaded(client, small_ct_zip)
    calls = 0

    def dies_after_the_first_batch(files, nbytes):
        nonlocal calls
        calls += 1
        if calls == 4:  # the first batch committed
            raise SystemExit  # the worker died here; its message is gone too

    with pytest.raises(SystemExit):
        ingest_job_run(job_id=job.pk, task_id="dead-message", progress=dies_after_the_first_batch)
    study = Study.objects.get(ingest_jobs=job)
    assert study.state == StudyState.PROCESSING and job.files.count() == 2
    with broker_in_memory():  # the broker takes the messages; nothing runs them (lost again)
        for n in range(1, queue.LOST_SENDS + 1):
            _age(job, 31)
            assert ingest_jobs_lost_send() == (1, 0)
            assert ingest_jobs_lost_send() == (0, 0)  # once a period
            job.refresh_from_db()
            assert (job.state, job.resends, job.task_id) == (JobState.RUNNING, n, "")
        _age(job, 31)
        assert ingest_jobs_lost_send() == (0, 1)
    job.refresh_from_db()
    study.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, "Stalled")
    assert study.state == StudyState.FAILED  # never shown as ready half-made
    failure = client.get(url).json()["job"]["failure"]
    assert failure["code"] == "stalled" and f"manage.py ingest --resume {job.public_id}" in failure["message"]
    failed = AuditEvent.objects.filter(action="imaging.ingest", outcome="failed", target_id=str(job.public_id))
    assert failed.count() == 1
    assert ingest_jobs_lost_send() == (0, 0)  # failed: no longer swept
    ingest_job_run(job_id=job.pk)  # what it stored and its staged file were kept
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.studies.get().num_instances == 6
    assert client.get(url).json()["job"]["failure"] is None
