"""An ingest job whose task the queue lost after it was sent (a broker restarted without its
messages, a process killed between the commit and the send) stays queued and never started: the
sweep (``ingest_jobs_lost_send``, apps.core.queue.lost_tasks_send) sends it again, once a period
at most, and after LOST_SENDS sends marks it failed with the reason. A task that finds its job
done, or running under another message (a duplicate sent again), leaves it alone."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core import queue
from apps.core.models import UnsentTask
from apps.imaging.models import IngestJob, JobState
from apps.imaging.services import ingest_job_create, ingest_jobs_lost_send
from apps.imaging.tasks import ingest_job_run_task
from tests.brokers import broker_in_memory
from tests.factories import CaseFactory
from tests.imaging.test_failure_reason import _uploaded

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(radiologist_client):
    return radiologist_client


def _waited(job: IngestJob, minutes: float, *, field: str = "created_at") -> None:
    IngestJob.objects.filter(pk=job.pk).update(**{field: timezone.now() - timedelta(minutes=minutes)})


def test_a_job_queued_and_never_started_is_sent_again_and_runs(client, small_ct, settings, caplog):
    settings.LIGHTBOX_TASK_NEVER_STARTED_MINUTES = 15
    url, job = _uploaded(client, small_ct)  # queued; its task never ran (lost)
    _waited(job, 14)
    assert ingest_jobs_lost_send() == (0, 0)  # not yet: it may still be waiting in the queue
    _waited(job, 16)
    assert ingest_jobs_lost_send() == (1, 0)  # tasks run in-process here: sent again = run
    job.refresh_from_db()
    assert (job.state, job.resends) == (JobState.DONE, 1) and job.studies.get().num_instances == 1
    assert client.get(url).json()["job"]["state"] == JobState.DONE
    assert f"task {ingest_job_run_task.name} {job.pk}: queued and never started; sent again (1 of 3)" in caplog.text
    assert "one.dcm" not in caplog.text  # ids only: a file name may carry the patient's
    assert ingest_jobs_lost_send() == (0, 0)


def test_sent_again_once_a_period_then_failed_with_the_reason_and_a_late_message_still_runs_it(
        client, small_ct, settings):
    settings.LIGHTBOX_TASK_NEVER_STARTED_MINUTES = 15
    url, job = _uploaded(client, small_ct)
    _waited(job, 16)
    with broker_in_memory():  # the broker takes the messages; nothing runs them (lost again)
        for n in range(1, queue.LOST_SENDS + 1):
            assert ingest_jobs_lost_send() == (1, 0)
            assert ingest_jobs_lost_send() == (0, 0)  # once a period, however often the sweep runs
            job.refresh_from_db()
            assert (job.state, job.resends) == (JobState.QUEUED, n)
            _waited(job, 16, field="resent_at")
        assert ingest_jobs_lost_send() == (0, 1)  # lost every time: given up
    job.refresh_from_db()
    assert (job.state, job.error, job.resends) == (JobState.FAILED, "NeverStarted", queue.LOST_SENDS)
    failure = client.get(url).json()["job"]["failure"]
    assert failure["code"] == "never_started"
    assert f"manage.py ingest --resume {job.public_id}" in failure["message"]
    failed = AuditEvent.objects.filter(action="imaging.ingest", outcome="failed", target_id=str(job.public_id))
    assert failed.count() == 1
    assert ingest_jobs_lost_send() == (0, 0)  # failed: no longer swept
    # one of the messages arrives after all (a queue far behind): it runs the job, nothing was lost
    ingest_job_run_task.apply(args=(job.pk,), task_id=str(uuid.uuid4()))
    job.refresh_from_db()
    assert job.state == JobState.DONE and client.get(url).json()["job"]["failure"] is None


def test_two_sweeps_at_once_send_each_job_once(client, small_ct, monkeypatch):
    """The second sweep read the jobs before the first claimed them: its claim (a conditional
    UPDATE on the number of sends it read) finds the job taken and sends nothing."""
    first, second = _uploaded(client, small_ct)[1], _uploaded(client, small_ct)[1]
    for job in (first, second):
        _waited(job, 16)
    sent: list[int] = []
    nested: list[tuple[int, int]] = []

    def send(task, args):
        sent.append(args[0])
        if len(sent) == 1:  # another sweep runs now, between this one's read and its next claim
            nested.append(ingest_jobs_lost_send())

    monkeypatch.setattr(queue, "_send", send)
    assert ingest_jobs_lost_send() == (1, 0)
    assert nested == [(1, 0)]
    assert sorted(sent) == sorted([first.pk, second.pk])  # each job sent once, by one of them
    assert set(IngestJob.objects.filter(pk__in=sent).values_list("resends", flat=True)) == {1}


def test_a_job_whose_send_the_broker_refused_waits_for_the_broker_not_the_sweep(client, small_ct):
    """Its UnsentTask row is sent by core-unsent-tasks-send once the broker answers; the broker
    being away for an hour does not fail the job."""
    _url, job = _uploaded(client, small_ct)
    UnsentTask.objects.create(task=ingest_job_run_task.name, args=[job.pk], error="OperationalError")
    _waited(job, 120)
    assert ingest_jobs_lost_send() == (0, 0)
    job.refresh_from_db()
    assert (job.state, job.resends) == (JobState.QUEUED, 0)


def test_jobs_of_the_command_are_not_swept(org_a, small_ct):
    """``manage.py ingest`` runs its jobs itself, on a path of its own disk; no task was queued."""
    job = ingest_job_create(organization=org_a, source_path=str(small_ct), case=CaseFactory(organization=org_a),
                            enqueue=False)
    _waited(job, 120)
    assert ingest_jobs_lost_send() == (0, 0)


def test_a_task_leaves_a_job_running_under_another_message_alone_and_resumes_its_own(client, small_ct):
    """A duplicate sent again while the first message still waited: the first started the job, so
    the duplicate returns without running it alongside (two runs of one job would both write its
    report lines). The first message delivered again (a worker killed mid-job) resumes it."""
    _url, job = _uploaded(client, small_ct)
    IngestJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, task_id="first-message",
                                               started_at=timezone.now(), attempts=1)
    ingest_job_run_task.apply(args=(job.pk,), task_id="duplicate-message", throw=True)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.files.count()) == (JobState.RUNNING, 1, 0)
    ingest_job_run_task.apply(args=(job.pk,), task_id="first-message", throw=True)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.files.count()) == (JobState.DONE, 2, 1)


def test_a_task_leaves_a_job_done_alone(client, small_ct):
    _url, job = _uploaded(client, small_ct)
    ingest_job_run_task.apply(args=(job.pk,), throw=True)
    job.refresh_from_db()
    assert job.state == JobState.DONE
    finished, attempts = job.finished_at, job.attempts
    ingest_job_run_task.apply(args=(job.pk,), throw=True)  # a duplicate, after the work is done
    job.refresh_from_db()
    assert (job.state, job.finished_at, job.attempts, job.files.count()) == (JobState.DONE, finished, attempts, 1)
