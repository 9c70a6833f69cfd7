from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from apps.core.queue import run_or_give_up
from apps.deid.services import deid_export_fail, deid_export_run
from apps.imaging.storage import STORAGE_ERRORS

TRANSIENT = (*STORAGE_ERRORS, OperationalError)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT,
             retry_backoff=True, max_retries=5)
def deid_export_task(self, export_id: int) -> None:
    """Entry point only (an id in, nothing out): the idempotent work is
    ``services.deid_export_run``, so a redelivered task makes only the missing files. When it
    gives up (an unexpected error, or storage still failing after the retries) the export is
    marked failed, so its page never spins for ever."""
    run_or_give_up(self, lambda: deid_export_run(export_id=export_id),
                   lambda exc: deid_export_fail(export_id=export_id, error=exc))
