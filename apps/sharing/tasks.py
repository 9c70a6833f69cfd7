from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def share_expiries_record_task() -> int:
    """Record share.expired for grants past their end (schedule it; safe to run twice)."""
    from apps.sharing.services import share_expiries_record

    return share_expiries_record()


@shared_task(acks_late=True)
def share_confirmations_prune_task() -> int:
    """Delete the share confirmations' claims older than any session (schedule it; safe to run twice)."""
    from apps.sharing.services import share_confirmations_prune

    return share_confirmations_prune()
