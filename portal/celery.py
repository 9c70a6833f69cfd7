"""The Celery app: Redis as broker when REDIS_URL is set, eager (in-process) otherwise."""

from __future__ import annotations

import gc
import logging
import os

from celery import Celery
from celery.signals import setup_logging, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

app = Celery("lightbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _keep_django_logging(**_kwargs) -> None:
    """A worker keeps the settings' LOGGING (configured by django.setup()) instead of replacing
    the root logger's handlers with Celery's own: its handler redacts (apps/core/logs.py), and a
    failed task logs its error's message."""


@worker_process_init.connect
def _freeze_startup_objects(**_kwargs) -> None:
    """As portal/asgi.py: the objects loaded before the pool process started are never
    collected, so the collector stops walking them; large buffers are reused (portal/memory.py)."""
    from portal.memory import apply_from_settings

    apply_from_settings()
    gc.freeze()


def broker_connect(celery_app: Celery | None = None) -> None:
    """Open the broker connection of this process's producer pool now, if there is a broker
    (Celery eager has none). A broker that cannot be reached is left to the first send (which
    the callers handle) and to /readyz."""
    celery_app = celery_app or app
    if celery_app.conf.task_always_eager:
        return
    try:
        with celery_app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=0)
    except Exception as exc:  # noqa: BLE001 - start-up must not fail on a broker that is down
        logging.getLogger(__name__).warning("broker not reachable at start-up (%s)", type(exc).__name__)
