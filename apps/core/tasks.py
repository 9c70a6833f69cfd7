from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def unsent_tasks_send_task() -> int:
    """Send again the tasks the broker could not take when they were queued (schedule it)."""
    from apps.core.queue import unsent_tasks_send

    return unsent_tasks_send()
