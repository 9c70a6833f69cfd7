from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def viewer_sessions_close_idle_task() -> int:
    """Close viewer sessions idle past LIGHTBOX_VIEWER_IDLE_MINUTES (viewer.closed, reason timeout)."""
    from apps.viewer.sessions import viewer_sessions_close_idle

    return viewer_sessions_close_idle()
