"""A task the broker could not take when its work was committed is recorded and sent again by the
sweep (apps.core.queue); nothing else is queued twice."""

from __future__ import annotations

import time

import pytest
from celery import shared_task

from apps.core.models import UnsentTask
from apps.core.queue import send_on_commit, unsent_tasks_send
from tests.brokers import broker_in_memory, broker_unreachable

pytestmark = pytest.mark.django_db

RAN: list[int] = []


@shared_task
def _probe_task(row_id: int) -> None:
    RAN.append(row_id)


def test_a_send_the_broker_refuses_is_recorded_and_sent_again_once_it_answers(
    django_capture_on_commit_callbacks, caplog
):
    RAN.clear()
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True):
        send_on_commit(_probe_task, 7)
    [row] = UnsentTask.objects.all()
    assert (row.task, row.args, row.error) == (_probe_task.name, [7], "OperationalError")
    assert "not queued (OperationalError)" in caplog.text
    with broker_unreachable():
        assert unsent_tasks_send() == 0  # still away: the row stays
    assert UnsentTask.objects.count() == 1 and RAN == []
    assert unsent_tasks_send() == 1  # it answers (here: tasks run eagerly)
    assert RAN == [7] and not UnsentTask.objects.exists()
    assert unsent_tasks_send() == 0 and RAN == [7]  # sent once


@shared_task(drop_unsent=True)
def _of_use_now_task(row_id: int) -> None:
    RAN.append(row_id)


def test_a_task_of_use_only_now_is_dropped_not_kept_when_the_broker_refuses(
    django_capture_on_commit_callbacks, caplog
):
    RAN.clear()
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True):
        send_on_commit(_of_use_now_task, 6)
    assert not UnsentTask.objects.exists()
    assert f"task {_of_use_now_task.name} not queued (OperationalError): dropped" in caplog.text
    assert unsent_tasks_send() == 0 and RAN == []


def test_a_send_that_succeeds_leaves_no_row(django_capture_on_commit_callbacks):
    RAN.clear()
    with django_capture_on_commit_callbacks(execute=True):
        send_on_commit(_probe_task, 8)
    assert RAN == [8] and not UnsentTask.objects.exists()


def test_a_refused_send_does_not_wait_on_the_result_store(django_capture_on_commit_callbacks):
    """In production one Redis is the broker and the result store. Nothing reads task results, so a
    send must not subscribe to its result first: with Redis away that subscription retried for
    about 20 s (the request waited) and then failed with a RuntimeError asking for a restart."""
    RAN.clear()
    started = time.monotonic()
    with broker_unreachable(result_backend=True), django_capture_on_commit_callbacks(execute=True):
        send_on_commit(_probe_task, 9)
    assert time.monotonic() - started < 5
    [row] = UnsentTask.objects.all()
    assert (row.args, row.error) == ([9], "OperationalError")


def test_a_row_that_can_never_be_sent_does_not_hold_back_the_others():
    """A row whose arguments its task no longer takes (a release changed the signature) raises
    TypeError on every send; it is kept for an administrator, and the sweep goes on with the
    others (it stopped there, every minute, so no row after it was ever sent)."""
    UnsentTask.objects.create(task=_probe_task.name, args=[], error="OperationalError")
    UnsentTask.objects.create(task=_probe_task.name, args=[5], error="OperationalError")
    with broker_in_memory():
        assert unsent_tasks_send() == 1
    assert list(UnsentTask.objects.values_list("args", flat=True)) == [[]]


RETRIED: list[int] = []


@shared_task(bind=True, max_retries=3)
def _retried_probe_task(self, row_id: int) -> None:
    """Fails on its first two tries (a storage error a retry gets past), then runs."""
    RETRIED.append(self.request.retries)
    if self.request.retries < 2:
        raise self.retry(countdown=0)
    RAN.append(row_id)


def test_in_process_the_sweep_runs_a_tasks_retries_as_the_first_send_does(caplog):
    """Where tasks run in-process (the embedded default), a row sent again ran through Celery's
    eager ``delay``, which raises the task's first Retry: the sweep ended there with the row
    deleted and the work never done. It runs the retries one after another, as ``_send`` does."""
    RAN.clear(), RETRIED.clear()
    UnsentTask.objects.create(task=_retried_probe_task.name, args=[11], error="OperationalError")
    UnsentTask.objects.create(task=_probe_task.name, args=[12], error="OperationalError")
    assert unsent_tasks_send() == 2
    assert RETRIED == [0, 1, 2] and RAN == [11, 12]
    assert not UnsentTask.objects.exists()
