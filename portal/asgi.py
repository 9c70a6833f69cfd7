"""ASGI entry point (uvicorn). Preferred over WSGI: chunked request bodies reach Django intact."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
django_application = get_asgi_application()

from apps.imaging.asgi import tus_body_passthrough  # noqa: E402 - needs the apps loaded

# tus appends stream from the receive channel to the view (no spooling of the body by Django)
application = tus_body_passthrough(django_application)
