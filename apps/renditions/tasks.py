from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from apps.core.queue import run_or_give_up
from apps.imaging.storage import STORAGE_ERRORS
from apps.renditions.services import study_renditions_make, study_renditions_stopped


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(*STORAGE_ERRORS, OperationalError), retry_backoff=True, max_retries=5)
def study_renditions_task(self, study_id: int) -> None:
    """Entry point only (ids in, nothing out): the idempotent work is
    ``services.study_renditions_make``, so a redelivered task makes only what is missing. When it
    gives up, the renditions still being made say they were not made (``study_renditions_stopped``)."""
    run_or_give_up(self, lambda: study_renditions_make(study_id=study_id),
                   lambda _exc: study_renditions_stopped(study_id=study_id))
