"""A server process connects to the broker when it starts, not inside the first request that
queues a task; a broker that is down does not stop it from starting."""

from __future__ import annotations

import logging
import os
import time
import uuid

import pytest
from celery import Celery

from portal.celery import broker_connect

REDIS_URL = os.environ.get("REDIS_URL", "")


def _clients(url: str, name: str) -> int:
    """Connections to the broker named ``name`` (the other xdist worker, and anything else on
    the same Redis, opens and closes its own connections meanwhile)."""
    import redis

    return sum(c.get("name") == name for c in redis.Redis.from_url(url).client_list())


@pytest.mark.skipif(not REDIS_URL, reason="needs a Redis broker (REDIS_URL)")
def test_the_broker_connection_is_opened_at_start_up():
    app = Celery("probe", broker=REDIS_URL)
    app.conf.broker_connection_retry_on_startup = False
    name = f"broker-connect-probe-{uuid.uuid4().hex}"
    app.conf.broker_transport_options = {"client_name": name}
    assert _clients(REDIS_URL, name) == 0
    try:
        broker_connect(app)
        assert _clients(REDIS_URL, name) == 1
        with app.producer_or_acquire() as producer:  # what the first send takes: already open
            assert producer.connection.connected
    finally:
        app.close()


def test_a_broker_that_is_down_is_reported_and_start_up_goes_on(caplog):
    app = Celery("probe", broker="redis://127.0.0.1:1/0")  # nothing listens on port 1
    app.conf.broker_transport_options = {"socket_connect_timeout": 3}
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="portal.celery"):
        broker_connect(app)
    assert time.monotonic() - started < 5
    assert "broker not reachable at start-up" in caplog.text
    app.close()


def test_nothing_is_opened_without_a_broker(caplog):
    app = Celery("probe", broker="redis://127.0.0.1:1/0")
    app.conf.task_always_eager = True
    with caplog.at_level(logging.WARNING, logger="portal.celery"):
        broker_connect(app)  # eager (the embedded default): there is no broker to reach
    assert "broker" not in caplog.text
