from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def audit_anchors_log_task() -> int:
    """Log each audit chain's head as an anchor line (schedule it; safe to run twice)."""
    from apps.audit.chain import anchors_log

    return anchors_log()
