"""The Celery app: Redis as broker when REDIS_URL is set, eager (in-process) otherwise."""

from __future__ import annotations

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

app = Celery("lightbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**_kwargs) -> None:
    """As portal/asgi.py: the objects loaded before the pool process started are never
    collected, so the collector stops walking them."""
    gc.freeze()
