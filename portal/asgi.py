"""ASGI entry point (uvicorn). Preferred over WSGI: chunked request bodies reach Django intact."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
application = get_asgi_application()
