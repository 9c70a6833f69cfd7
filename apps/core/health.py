"""Readiness checks: each answers None when its part is reachable, or a short reason."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connections


def check_database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        connections["default"].close_if_unusable_or_obsolete()
        return type(exc).__name__
    return None


def check_broker() -> str | None:
    if settings.CELERY_TASK_ALWAYS_EAGER and not settings.REDIS_URL:
        return None  # embedded default: tasks run in-process, there is no broker to reach
    from portal.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__
    return None


def check_storage() -> str | None:
    name = f".readyz/{uuid.uuid4().hex}"
    try:
        saved = default_storage.save(name, ContentFile(b"ok"))
        default_storage.delete(saved)
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__
    return None


CHECKS = {"database": check_database, "broker": check_broker, "storage": check_storage}


def readiness() -> dict[str, str]:
    """{part: "ok" | "unreachable (<ErrorType>)"} for every part the portal needs."""
    result = {}
    for part, check in CHECKS.items():
        problem = check()
        result[part] = "ok" if problem is None else f"unreachable ({problem})"
    return result
