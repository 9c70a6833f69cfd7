"""ASGI entry point (uvicorn). Preferred over WSGI: chunked request bodies reach Django intact."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

from apps.core.asgi import get_asgi_application

# Django's handler, the request body encrypted past the memory limit and the tasks waiting for the
# response run even when the client leaves first (apps/core/asgi.py)
django_application = get_asgi_application()

from apps.imaging.asgi import tus_body_passthrough  # noqa: E402 - needs the apps loaded

# tus appends stream from the receive channel to the view (no spooling of the body by Django)
application = tus_body_passthrough(django_application)

from portal.celery import broker_connect  # noqa: E402

# the first task sent opens the broker connection and loads its transport (~0.1 s): done now,
# not inside the first request that queues one
broker_connect()

from apps.core import beat  # noqa: E402

beat.start()  # the embedded default only: no broker, so this process runs the beat schedule

from portal.memory import apply_from_settings  # noqa: E402

apply_from_settings()  # large buffers reused, not mapped and faulted in afresh (portal/memory.py)

import gc  # noqa: E402

# what start-up loaded (Django, the apps, their modules) lives as long as the process: frozen,
# the collector no longer walks it on every full pass (uploads allocate fast enough to trigger
# many; profiled at ~10 % of a server process's CPU during a large upload)
gc.freeze()
