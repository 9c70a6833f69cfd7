from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from apps.core.queue import run_or_give_up
from apps.imaging.storage import STORAGE_ERRORS
from apps.renditions.services import study_renditions_claim, study_renditions_make, study_renditions_stopped


# eager_after_response (apps.core.queue): queued eagerly during a request, made once its response
# has been sent, not in the answer's time; queued by an ingest, made right after it
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(*STORAGE_ERRORS, OperationalError), retry_backoff=True, max_retries=5,
             eager_after_response=True)
def study_renditions_task(self, study_id: int) -> None:
    """Entry point only (ids in, nothing out): the idempotent work is
    ``services.study_renditions_make``, so a redelivered task makes only what is missing. When it
    gives up, the renditions still being made say they were not made (``study_renditions_stopped``).
    A message for a run another message started (a duplicate) returns at once."""
    run_or_give_up(self, lambda: _make(study_id, self.request.id),
                   lambda _exc: study_renditions_stopped(study_id=study_id))


def _make(study_id: int, task_id: str) -> None:
    if study_renditions_claim(study_id=study_id, task_id=task_id):  # not a duplicate of a run started
        study_renditions_make(study_id=study_id)


@shared_task(acks_late=True)
def study_renditions_lost_send_task() -> tuple[int, int]:
    """Send again the renditions whose task the queue lost; give up on those lost every time (schedule it)."""
    from apps.renditions.services import study_renditions_lost_send

    return study_renditions_lost_send()
