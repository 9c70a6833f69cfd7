from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from apps.imaging.services import StorageUnavailable, ingest_job_fail, ingest_job_run


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(StorageUnavailable, OperationalError),
             retry_backoff=True, max_retries=5)
def ingest_job_run_task(job_id: int) -> None:
    """Entry point only: the work (idempotent, resumable) is ``services.ingest_job_run``."""
    try:
        ingest_job_run(job_id=job_id)
    except (StorageUnavailable, OperationalError):
        raise
    except Exception as exc:
        ingest_job_fail(job_id=job_id, error=type(exc).__name__)
        raise


@shared_task(acks_late=True)
def uploads_expire_task() -> int:
    """Expire unfinished uploads past their time and delete their staging files (schedule it)."""
    from apps.imaging.uploads import uploads_expire

    return uploads_expire()
