"""The beat schedule on the embedded default (apps/core/beat.py): with no broker, the server
process runs CELERY_BEAT_SCHEDULE's tasks itself, when each is due; one that fails stops neither
the others nor its own next run."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.beat import InProcessBeat
from tests.factories import GrantFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the schedule runs on its own thread


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_the_embedded_default_runs_the_schedule_and_production_leaves_it_to_celery_beat():
    from django.conf import settings

    import portal.settings.base as base

    assert settings.CELERY_BEAT_SCHEDULE  # there is a schedule to run
    # on by default exactly where tasks run eagerly (no broker)
    assert base.LIGHTBOX_IN_PROCESS_BEAT == base.CELERY_TASK_ALWAYS_EAGER


def test_a_due_task_runs_in_process_and_an_expired_share_reaches_the_audit_trail():
    GrantFactory(expires_at=timezone.now() - timedelta(minutes=1))
    beat = InProcessBeat({
        # 2 s: the check "not at start" below must not race a loaded machine's first interval
        "expiries": {"task": "apps.sharing.tasks.share_expiries_record_task", "schedule": 2.0},
        "broken": {"task": "apps.nowhere.tasks.missing_task", "schedule": 0.5},
    }).start()
    try:
        assert not AuditEvent.objects.filter(action="share.expired").exists()  # not at start: after one interval
        assert _until(lambda: AuditEvent.objects.filter(action="share.expired").exists())
        assert _until(lambda: beat.runs["expiries"] >= 2)  # it goes on running, every interval
        assert beat.failures["broken"] >= 2  # the failing entry is retried, and stops nothing
    finally:
        beat.stop()
    assert AuditEvent.objects.filter(action="share.expired").count() == 1  # safe to run again and again
