"""Queuing a task once its rows are committed, and sending it again when the broker could not take it.

Services queue their tasks with ``send_on_commit(task, id)`` (``transaction.on_commit``, ids
only). When the broker cannot be reached at that moment (Redis down or restarting), the send
fails after the commit: the work it names is saved (an upload's bytes staged, an export asked
for) but nothing would ever run it, and the request that did the work would end in a 500. Here
such a send is recorded as an ``UnsentTask`` row (the task's name and its ids, never patient
data) and the request goes on; the page shows the work as queued. The beat entry
``core-unsent-tasks-send`` (``unsent_tasks_send``) sends the rows again once the broker answers.
A row exists only for a send that failed, so this never queues a task twice (the tasks are
idempotent all the same). A task that is of use only now declares ``drop_unsent = True`` (an
option of its decorator: ``@shared_task(drop_unsent=True)``): a send of it that fails is logged
(the error's type only) and dropped, never recorded. So is the e-mailed sign-in link
(``accounts.tasks.sso_link_send_task``): the person asks again, whereas sent later it would be one
e-mail for every request made while the broker was away, all at once, past the per-address limit
(which rests with Redis too), and a row for every request anyone cared to make. Where tasks run
eagerly (the embedded default, no broker) the task runs in-process, its retries at once, and a
task that still fails is logged (by type) as a worker would log it, not raised into the request
that queued it: the task records how it ended.

A task whose running must not show in the time a request takes declares ``eager_after_response =
True`` (``@shared_task(eager_after_response=True)``): where tasks run eagerly and a request is
being answered, it runs once that request's response has been sent (``AfterResponseMiddleware``
in apps.core.middleware hands the response what was queued; Django closes a response once the
server has sent it, under WSGI and ASGI alike), not as the request commits. The e-mailed sign-in
link is one (``accounts.tasks.sso_link_send_task``): run in the request, the answer to a staff
address took the mail server's time longer than to any other, and told who is staff. Outside a
request (a task, a command) it runs at once; with a broker nothing changes.

A task lost after it was sent (a broker restarted without its messages, a process killed between
the commit and the send) leaves its work queued and never started. Each app that queues work
sweeps for it on a schedule (``lost_tasks_send``, one mechanism): work still queued
``LIGHTBOX_TASK_NEVER_STARTED_MINUTES`` after it was queued, or after it was last sent again, is
sent again through the same send (``_send``), at most once a period (claimed by a conditional
UPDATE), and after ``LOST_SENDS`` sends it is marked failed with the reason (the app's
``give_up``). A send again may duplicate a message still waiting in the queue: the tasks leave
work that is done, or running under another message, alone (they claim it with their message's
id, which the broker keeps when it delivers a message again).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta
from functools import partial

from celery.exceptions import Retry
from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.logs import scrubbed
from apps.core.models import UnsentTask

logger = logging.getLogger(__name__)

#: rows sent again per sweep, at most (the next sweep takes the rest)
SWEEP_MAX = 1000

#: times work queued and never started is sent again before it is marked failed (``lost_tasks_send``)
LOST_SENDS = 3


#: the eager runs waiting for the response of the request being answered (``AfterResponseMiddleware``
#: sets a list here for each request); None outside a request
after_response: ContextVar[list[Callable[[], None]] | None] = ContextVar("lightbox_after_response", default=None)


def send_on_commit(task, *args: int) -> None:
    """Queue ``task(*args)`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(_send, task, args))


def _send(task, args: tuple) -> None:
    if task.app.conf.task_always_eager:
        waiting = after_response.get()
        if waiting is not None and getattr(task, "eager_after_response", False):
            waiting.append(partial(_run_in_process, task, args))  # once the response is sent
            return
        _run_in_process(task, args)
        return
    try:
        task.delay(*args)
    except Exception as exc:  # noqa: BLE001 - any failure to publish: the committed work must not be lost
        if getattr(task, "drop_unsent", False):  # of use only now (module docstring): not kept
            logger.warning("task %s not queued (%s): dropped", task.name, type(exc).__name__)
            return
        UnsentTask.objects.create(task=task.name, args=list(args), error=type(exc).__name__)
        logger.warning(
            "task %s not queued (%s): it is sent again once the broker answers", task.name, type(exc).__name__
        )


def _run_in_process(task, args: tuple) -> None:
    """Run ``task`` here as a worker would: its retries one after another (Celery's eager mode
    raises a task's first Retry to the caller instead), and a task that still fails logged, by
    type only, not raised into the request that queued it: the task records how it ended (a job
    failed, with why)."""
    retries, task_id = 0, str(uuid.uuid4())  # one id for every try, as a worker's retries keep theirs
    while True:
        try:
            task.apply(args=args, retries=retries, task_id=task_id, throw=True)
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


def never_started_after() -> timedelta:
    """How long queued work may wait for its task before it is taken for lost (a setting)."""
    return timedelta(minutes=settings.LIGHTBOX_TASK_NEVER_STARTED_MINUTES)


def lost_tasks_send(task, queued: models.QuerySet, *, queued_at: str, arg: str = "pk",
                    give_up: Callable[[models.QuerySet, int], object], now=None,
                    after: timedelta | None = None, release: dict | None = None) -> tuple[int, int]:
    """Send ``task`` again for the work in ``queued`` (the caller's rows queued and never started,
    with ``resent_at`` and ``resends`` fields) that has waited ``never_started_after()`` since
    ``queued_at`` or since it was last sent again; the task's one argument is the row's ``arg``.
    Each send is claimed by a conditional UPDATE (``resends`` as it was read), so two sweeps never
    both send, and one period passes between two sends of the same work. Work sent ``LOST_SENDS``
    times is handed to ``give_up(claim, value)``, which marks it failed through ``claim`` (the row,
    still queued and not claimed meanwhile: an UPDATE that finds nothing means a task started it).
    Work whose send the broker refused waits for ``unsent_tasks_send`` (an ``UnsentTask`` row):
    the broker is away, the task is not lost. Logs task names and ids only. Returns (sent again,
    given up).

    The same sweep takes work that started and then stopped showing signs of life (``queued`` is
    then the caller's stalled rows, ``queued_at`` its last sign of life): ``after`` is its own
    period, and ``release`` the fields the claim sets so that the message sent again may take the
    work over (the run that stalled loses it: apps.imaging.services, ``JobTakenOver``)."""
    now = now or timezone.now()
    cutoff = now - (after or never_started_after())
    lost = "stalled" if release is not None else "queued and never started"  # for the log
    waiting = {tuple(args) for args in UnsentTask.objects.filter(task=task.name).values_list("args", flat=True)}
    due = queued.filter(Q(resent_at__isnull=True, **{f"{queued_at}__lt": cutoff}) | Q(resent_at__lt=cutoff))
    sent = failed = 0
    for pk, value, resends in due.order_by("pk").values_list("pk", arg, "resends")[:SWEEP_MAX]:
        if (value,) in waiting:
            continue
        claim = queued.filter(pk=pk, resends=resends)
        if resends >= LOST_SENDS:
            if give_up(claim, value):
                failed += 1
                logger.error("task %s %s: %s, sent again %s times; its work is marked failed", task.name, value,
                             lost, resends)
            continue
        if not claim.update(resent_at=now, resends=F("resends") + 1, **(release or {})):
            continue  # another sweep sent it, or a task started it
        logger.warning("task %s %s: %s; sent again (%s of %s)", task.name, value, lost, resends + 1, LOST_SENDS)
        _send(task, (value,))
        sent += 1
    return sent, failed
