from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def share_expiries_record_task() -> int:
    """Record share.expired for grants past their end, and board.window_ended for tumor boards
    whose review window (and so their grants) ran out without anyone ending them (schedule it;
    safe to run twice). Returns the number of events recorded."""
    from apps.cases.services import boards_window_ends_record
    from apps.sharing.services import share_expiries_record

    return share_expiries_record() + boards_window_ends_record()


@shared_task(acks_late=True)
def share_confirmations_prune_task() -> int:
    """Delete the share confirmations' claims older than any session (schedule it; safe to run twice)."""
    from apps.sharing.services import share_confirmations_prune

    return share_confirmations_prune()
