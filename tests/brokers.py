"""A Celery broker that cannot be reached, for real: the app sends to a port nothing listens on."""

from __future__ import annotations

from contextlib import contextmanager

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused


def _reset(app) -> None:
    app._pool = None  # the connection pool and the producer pool are made again from the new URL
    app.amqp._producer_pool = None
    app._backend_cache = None  # the result backend too (kept per app, or per thread)
    app._local.__dict__.pop("backend", None)


@contextmanager
def broker_unreachable(*, result_backend: bool = False):
    """Tasks are sent (not run eagerly) to a broker that refuses connections; with
    ``result_backend`` the result store is that Redis too, as in production (one REDIS_URL)."""
    with _broker(UNREACHABLE, result_backend=result_backend):
        yield


@contextmanager
def broker_in_memory():
    """Tasks are sent (not run eagerly) to kombu's in-process broker, which takes every message
    (nothing consumes them)."""
    with _broker("memory://localhost/"):
        yield


@contextmanager
def _broker(url: str, *, result_backend: bool = False):
    from portal.celery import app

    keys = ("broker_url", "task_always_eager", "result_backend")
    saved = {key: app.conf.changes[key] for key in keys if key in app.conf.changes}
    app.conf.broker_url, app.conf.task_always_eager = url, False
    if result_backend:
        app.conf.result_backend = UNREACHABLE
    _reset(app)
    try:
        yield
    finally:
        for key in keys:  # read from the Django settings again (override_settings in other tests)
            app.conf.changes.pop(key, None)
        app.conf.changes.update(saved)
        _reset(app)
