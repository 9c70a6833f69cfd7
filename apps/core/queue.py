"""Queuing a task once its rows are committed, and sending it again when the broker could not take it.

Services queue their tasks with ``send_on_commit(task, id)`` (``transaction.on_commit``, ids
only). When the broker cannot be reached at that moment (Redis down or restarting), the send
fails after the commit: the work it names is saved (an upload's bytes staged, an export asked
for) but nothing would ever run it, and the request that did the work would end in a 500. Here
such a send is recorded as an ``UnsentTask`` row (the task's name and its ids, never patient
data) and the request goes on; the page shows the work as queued. The beat entry
``core-unsent-tasks-send`` (``unsent_tasks_send``) sends the rows again once the broker answers.
A row exists only for a send that failed, so this never queues a task twice (the tasks are
idempotent all the same). Where tasks run eagerly (the embedded default, no broker) the task runs
in-process, its retries at once, and a task that still fails is logged (by type) as a worker
would log it, not raised into the request that queued it: the task records how it ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from celery.exceptions import Retry
from django.db import transaction

from apps.core.logs import scrubbed
from apps.core.models import UnsentTask

logger = logging.getLogger(__name__)

#: rows sent again per sweep, at most (the next sweep takes the rest)
SWEEP_MAX = 1000


def send_on_commit(task, *args: int) -> None:
    """Queue ``task(*args)`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(_send, task, args))


def _send(task, args: tuple) -> None:
    if task.app.conf.task_always_eager:
        _run_in_process(task, args)
        return
    try:
        task.delay(*args)
    except Exception as exc:  # noqa: BLE001 - any failure to publish: the committed work must not be lost
        UnsentTask.objects.create(task=task.name, args=list(args), error=type(exc).__name__)
        logger.warning(
            "task %s not queued (%s): it is sent again once the broker answers", task.name, type(exc).__name__
        )


def _run_in_process(task, args: tuple) -> None:
    """Run ``task`` here as a worker would: its retries one after another (Celery's eager mode
    raises a task's first Retry to the caller instead), and a task that still fails logged, by
    type only, not raised into the request that queued it: the task records how it ended (a job
    failed, with why)."""
    retries = 0
    while True:
        try:
            task.apply(args=args, retries=retries, throw=True)
        except Retry:
            retries += 1
            continue
        except Exception as exc:  # noqa: BLE001 - as a worker: logged, the request goes on
            logger.error("task %s failed in-process (%s)", task.name, type(exc).__name__)
        return


def run_or_give_up(task, work: Callable[[], object], give_up: Callable[[BaseException], object]) -> None:
    """The body of a bound task whose work is idempotent: run ``work``; where the task gives up,
    ``give_up(error)`` first marks what it was doing as failed (a job, an export, renditions),
    so that no page shows it running for ever. It gives up on an error it does not retry, and on
    one it retries (its ``autoretry_for``: storage, the database) once its retries are used up.
    The error is raised on: a retried one for Celery to retry, any other without its message
    (``scrubbed``: it may quote file content or a path that names the patient)."""
    try:
        work()
    except task.autoretry_for as exc:
        if task.request.retries >= task.max_retries:
            give_up(exc)
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised, without its message
        give_up(exc)
        raise scrubbed(exc) from None


def unsent_tasks_send() -> int:
    """Send the tasks the broker could not take (schedule it). Each row is claimed by deleting it
    in a transaction that rolls back if the send fails, so a row is sent by one sweep and kept
    until a send succeeds; the first failure ends the sweep (the broker is still away), except a
    row its task no longer takes (TypeError: kept for an administrator, the sweep goes on)."""
    from portal.celery import app

    sent = 0
    for row in UnsentTask.objects.all()[:SWEEP_MAX]:
        task = app.tasks.get(row.task)
        if task is None:  # renamed or removed in a release: nothing can run it
            logger.error("unsent task %s: no such task; row %s kept", row.task, row.pk)
            continue
        eager = task.app.conf.task_always_eager  # no broker now: the task runs here, after its claim
        try:
            with transaction.atomic():
                if not UnsentTask.objects.filter(pk=row.pk).delete()[0]:
                    continue  # another sweep sent it
                if not eager:
                    task.delay(*row.args)
        except TypeError as exc:  # its task no longer takes these arguments (a release changed it)
            logger.error("unsent task %s: %s; row %s kept", row.task, exc, row.pk)
            continue  # no send will ever take it: the broker is not the cause, the others go on
        except Exception as exc:  # noqa: BLE001 - the broker still cannot be reached: the row stays
            logger.warning("unsent tasks: %s still not queued (%s); %s sent", row.task, type(exc).__name__, sent)
            break
        if eager:  # as _send does: its retries run here, one after another, and a failure is logged
            _run_in_process(task, tuple(row.args))
        sent += 1
    if sent:
        logger.info("unsent tasks: %s sent", sent)
    return sent
