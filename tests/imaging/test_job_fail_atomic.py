"""Failing a job and finishing its studies is one transaction: an error while the studies are
finished (the database, in ``_studies_release``) leaves the job as it was (running), where the
task's retry or the lost-job sweep takes it again, never failed with a study left processing that
nothing would finish. Both the task's give-up (``ingest_job_fail``) and the sweep's
(``ingest_jobs_lost_send``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.imaging import services
from apps.imaging.models import IngestJob, JobState, Study, StudyState
from apps.imaging.services import ingest_job_fail, ingest_job_run, ingest_jobs_lost_send
from tests.imaging.test_failed_job_studies import _adding, failing_at, stored  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def release_fails_once(monkeypatch):
    """``_studies_release`` raises a database error on its first call, as a lost connection would."""
    real = services._studies_release
    calls = []

    def release(job):
        calls.append(job.pk)
        if len(calls) == 1:
            raise OperationalError("connection lost")
        return real(job)

    monkeypatch.setattr(services, "_studies_release", release)
    return calls


def _stopped_part_way(org_a, stored: Study, tmp_path, failing_at) -> IngestJob:  # noqa: F811
    """A job that added to ``stored`` and whose run raised: running still, the study processing."""
    failing_at("04.dcm")
    job = _adding(org_a, stored, tmp_path)
    with pytest.raises(OSError):
        ingest_job_run(job_id=job.pk)
    job.refresh_from_db()
    stored.refresh_from_db()
    assert (job.state, stored.state) == (JobState.RUNNING, StudyState.PROCESSING)
    return job


def _failed_events(job: IngestJob) -> int:
    return AuditEvent.objects.filter(action="imaging.ingest", outcome="failed", target_id=str(job.public_id)).count()


def _assert_left_running(job: IngestJob, study: Study) -> None:
    job.refresh_from_db()
    study.refresh_from_db()
    assert job.state == JobState.RUNNING  # not failed: the sweep still sees it
    assert study.state == StudyState.PROCESSING
    assert _failed_events(job) == 0


def _assert_failed_and_released(job: IngestJob, study: Study) -> None:
    job.refresh_from_db()
    study.refresh_from_db()
    assert job.state == JobState.FAILED
    assert study.state == StudyState.READY_WITH_WARNINGS
    assert study.num_instances == study.instances.count() > 2  # what it holds
    assert _failed_events(job) == 1


def test_a_give_up_that_cannot_finish_the_studies_leaves_the_job_to_the_sweep(
        org_a, stored, tmp_path, failing_at, release_fails_once):  # noqa: F811
    job = _stopped_part_way(org_a, stored, tmp_path, failing_at)
    with pytest.raises(OperationalError):
        ingest_job_fail(job_id=job.pk, error="OSError", task_id=job.task_id)
    _assert_left_running(job, stored)
    assert ingest_jobs_lost_send(now=timezone.now() + timedelta(days=2)) == (0, 1)
    _assert_failed_and_released(job, stored)
    assert IngestJob.objects.get(pk=job.pk).error == services.COMMAND_STOPPED


def test_a_give_up_tried_again_fails_the_job_and_finishes_its_studies(
        org_a, stored, tmp_path, failing_at, release_fails_once):  # noqa: F811
    job = _stopped_part_way(org_a, stored, tmp_path, failing_at)
    with pytest.raises(OperationalError):
        ingest_job_fail(job_id=job.pk, error="OSError", task_id=job.task_id)
    ingest_job_fail(job_id=job.pk, error="OSError", task_id=job.task_id)  # the task's retry gives up again
    _assert_failed_and_released(job, stored)


def test_the_sweep_that_cannot_finish_the_studies_leaves_the_job_for_its_next_round(
        org_a, stored, tmp_path, failing_at, release_fails_once):  # noqa: F811
    job = _stopped_part_way(org_a, stored, tmp_path, failing_at)
    later = timezone.now() + timedelta(days=2)
    with pytest.raises(OperationalError):
        ingest_jobs_lost_send(now=later)
    _assert_left_running(job, stored)
    assert ingest_jobs_lost_send(now=later) == (0, 1)
    _assert_failed_and_released(job, stored)
