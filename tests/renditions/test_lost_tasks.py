"""Renditions whose task the queue lost after it was sent (queued after ingest, never started) are
sent again by the sweep (``study_renditions_lost_send``, apps.core.queue.lost_tasks_send), once a
period at most, and after LOST_SENDS sends say why they were not made, rather than "Not made
yet" for ever. A task that finds the run started by another message (a duplicate) or the work
done leaves it alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core import queue
from apps.renditions import services
from apps.renditions.models import Kind, Rendition, RenditionFile, RenditionRun, Status
from apps.renditions.services import study_renditions_lost_send
from apps.renditions.tasks import study_renditions_task
from tests.brokers import broker_in_memory
from tests.renditions.conftest import ingest_folder

pytestmark = pytest.mark.django_db


def _waited(study, minutes: float, field: str = "queued_at") -> None:
    RenditionRun.objects.filter(study=study).update(**{field: timezone.now() - timedelta(minutes=minutes)})


def test_renditions_queued_and_never_started_are_sent_again_and_made(org_a, small_ct, settings, caplog):
    settings.LIGHTBOX_TASK_NEVER_STARTED_MINUTES = 15
    [study] = ingest_folder(small_ct, org_a)  # renditions queued on commit: never sent here (lost)
    run = RenditionRun.objects.get(study=study)
    assert run.started_at is None and not Rendition.objects.filter(study=study).exists()
    _waited(study, 14)
    assert study_renditions_lost_send() == (0, 0)
    _waited(study, 16)
    assert study_renditions_lost_send() == (1, 0)  # in-process here: sent again = made
    assert Rendition.objects.get(study=study, kind=Kind.PREVIEW).status == Status.READY
    run.refresh_from_db()
    assert run.started_at is not None and run.resends == 1
    assert f"task {study_renditions_task.name} {study.pk}: queued and never started; sent again" in caplog.text
    assert study_renditions_lost_send() == (0, 0)


def test_lost_every_time_the_renditions_say_why_and_a_late_message_still_makes_them(org_a, small_ct, settings):
    settings.LIGHTBOX_TASK_NEVER_STARTED_MINUTES = 15
    [study] = ingest_folder(small_ct, org_a)
    _waited(study, 16)
    with broker_in_memory():  # taken by the broker, run by nobody
        for n in range(1, queue.LOST_SENDS + 1):
            assert study_renditions_lost_send() == (1, 0)
            assert study_renditions_lost_send() == (0, 0)  # once a period
            assert RenditionRun.objects.get(study=study).resends == n
            _waited(study, 16, field="resent_at")
        assert study_renditions_lost_send() == (0, 1)
    renditions = Rendition.objects.filter(study=study)
    assert {r.kind for r in renditions} == set(Kind)  # every kind says so, not "Not made yet"
    assert {r.status for r in renditions} == {Status.UNAVAILABLE}
    assert all("work queue lost the task" in r.reason_shown for r in renditions)
    assert not RenditionRun.objects.filter(study=study).exists()
    assert study_renditions_lost_send() == (0, 0)
    study_renditions_task.apply(args=(study.pk,), throw=True)  # a message arrives after all
    assert {r.status for r in Rendition.objects.filter(study=study)} == {Status.READY}


def test_a_task_leaves_a_run_started_by_another_message_alone_and_resumes_its_own(org_a, small_ct, monkeypatch):
    [study] = ingest_folder(small_ct, org_a)
    RenditionRun.objects.filter(study=study).update(started_at=timezone.now(), task_id="first-message")
    study_renditions_task.apply(args=(study.pk,), task_id="duplicate-message", throw=True)
    assert not RenditionFile.objects.filter(study=study).exists()  # the first message's to make
    study_renditions_task.apply(args=(study.pk,), task_id="first-message", throw=True)  # delivered again
    assert Rendition.objects.get(study=study, kind=Kind.PREVIEW).files_ready == 6
    reads: list[int] = []
    real = services.open_blob
    monkeypatch.setattr(services, "open_blob", lambda blob: reads.append(blob.pk) or real(blob))
    before = list(RenditionFile.objects.filter(study=study).values_list("pk", flat=True).order_by("pk"))
    study_renditions_task.apply(args=(study.pk,), task_id="late-duplicate", throw=True)  # after the work is done
    assert reads == []
    assert list(RenditionFile.objects.filter(study=study).values_list("pk", flat=True).order_by("pk")) == before


def test_a_study_queued_again_is_made_again_by_its_new_message(org_a, small_ct):
    """More images for the same study version queue its renditions again: the new message starts a
    new run (the earlier one finished)."""
    [study] = ingest_folder(small_ct, org_a)
    study_renditions_task.apply(args=(study.pk,), task_id="first", throw=True)
    services.renditions_queue(study_id=study.pk)
    run = RenditionRun.objects.get(study=study)
    assert (run.started_at, run.task_id, run.resends) == (None, "", 0)
    study_renditions_task.apply(args=(study.pk,), task_id="second", throw=True)
    assert RenditionRun.objects.get(study=study).task_id == "second"
