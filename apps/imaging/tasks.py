from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from apps.core.queue import run_or_give_up
from apps.imaging.services import StorageUnavailable, ingest_job_fail, ingest_job_run

logger = logging.getLogger(__name__)


# eager_after_response: apps.core.queue
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(StorageUnavailable, OperationalError), retry_backoff=True, max_retries=5,
             eager_after_response=True)
def ingest_job_run_task(self, job_id: int) -> None:
    """Entry point only: the work (idempotent, resumable) is ``services.ingest_job_run``. When
    storage (or the database) is still failing after the retries, the job is marked failed, so
    its upload's page stops showing it running; what it stored is kept, and ``manage.py ingest
    --resume JOB`` finishes it once storage is back. Where tasks run eagerly (the embedded
    default), it runs once the response of the request that queued it has been sent
    (``eager_after_response``): the upload's last PATCH answers at once, and the upload page
    polls the job's progress as it does with a worker, instead of the PATCH being held for the
    whole ingest (found by QA: "Uploading · 100%" for half a minute)."""
    run_or_give_up(self, lambda: ingest_job_run(job_id=job_id, task_id=self.request.id),
                   lambda exc: ingest_job_fail(job_id=job_id, error=type(exc).__name__,
                                                    task_id=self.request.id))


@shared_task(acks_late=True)
def ingest_jobs_lost_send_task() -> tuple[int, int]:
    """Send again the ingest jobs whose task the queue lost; fail those lost every time (schedule it)."""
    from apps.imaging.services import ingest_jobs_lost_send

    return ingest_jobs_lost_send()


@shared_task(acks_late=True)
def uploads_expire_task() -> int:
    """Expire unfinished uploads past their time and delete their staging files (schedule it)."""
    from apps.imaging.uploads import uploads_expire

    return uploads_expire()


@shared_task(acks_late=True)
def failed_uploads_discard_task() -> int:
    """Discard the staged files of failed ingests past their retention (schedule it)."""
    from apps.imaging.uploads import failed_uploads_discard

    return failed_uploads_discard()


@shared_task(acks_late=True)
def staging_leftovers_delete_task() -> int:
    """Delete what ended uploads left in the staging folder (a deletion at their end that failed; schedule it)."""
    from apps.imaging.uploads import staging_leftovers_delete

    return staging_leftovers_delete()


@shared_task(acks_late=True, ignore_result=True)
def upload_follow_task(upload_id: int) -> int:
    """Prepare the entries of an upload received so far (apps.imaging.follow). It only saves
    the ingest work: if it fails, following stops and the ingest job does everything."""
    from apps.imaging.follow import upload_follow
    from apps.imaging.models import Upload

    try:
        return upload_follow(upload_id=upload_id)
    except Exception as exc:  # noqa: BLE001 - never fatal; no message text (it could hold a name)
        logger.warning("upload %s: follower failed (%s); the ingest job does it all", upload_id, type(exc).__name__)
        Upload.objects.filter(pk=upload_id).update(follow_done=True)
        return 0


@shared_task(acks_late=True)
def blobs_orphans_delete_task() -> int:
    """Delete stored blob files no row names (a killed writer's), a day old or more (schedule it)."""
    from apps.imaging.blobs import blobs_orphans_delete

    deleted = blobs_orphans_delete()
    if deleted:
        logger.info("blobs: deleted %s stored file(s) that no blob names", deleted)
    return deleted
