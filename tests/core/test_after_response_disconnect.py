"""A task queued to run once the response has been sent (``eager_after_response``, where tasks run
eagerly: the embedded default) runs even when the client left before the response (found by
review): AfterResponseMiddleware hands it to the response's close(), and under ASGI Django closes
no response when it sees the client disconnect first (it cancels the request), so the e-mailed
sign-in link was never sent, and an upload whose last PATCH the client did not wait for would be
never ingested. The portal's ASGI handler (apps.core.asgi) runs what is still waiting, each once.

In process (portal.asgi.application, a client that disconnects as soon as its body is sent) and
over a real uvicorn (a socket closed while the view runs, made slower for it)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

import pytest
from django.conf import settings
from django.core import mail

from apps.accounts.models import SSOConfig
from apps.organizations.models import Role
from portal.asgi import application  # here: its django.setup() configures logging before caplog does
from tests.factories import member
from tests.servers import uvicorn_server

CSRF = "t" * 32


def _run(coro):
    """asyncio.run on a thread of its own (a browser test may leave an event loop on this one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _sso_start(email: str, *, leaves: threading.Event | None) -> dict:
    """POST /accounts/sso/ to the application; the client leaves once ``leaves`` is set (while
    the view runs), or waits for the answer."""
    body = urlencode({"email": email}).encode()
    sent = False
    out: dict = {}

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if leaves is not None:
            while not leaves.is_set():
                await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]

    path = "/accounts/sso/"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded"),
                         (b"content-length", str(len(body)).encode()), (b"x-csrftoken", CSRF.encode()),
                         (b"cookie", f"csrftoken={CSRF}".encode())],
             "client": ("203.0.113.9", 5000), "server": ("testserver", 80)}
    await application(scope, receive, send)
    return out


@pytest.fixture
def alpha_sso(org_a):
    member(org_a, Role.CLINICIAN, email="sam@alpha.example")
    return SSOConfig.objects.create(organization=org_a, issuer="https://idp.alpha.example/realms/staff",
                                    client_id="x", allowed_domains="alpha.example", enabled=True)


@pytest.mark.django_db(transaction=True)  # the request commits for real: its on_commit runs in it
def test_a_client_that_leaves_before_the_answer_is_still_sent_its_e_mail(alpha_sso, caplog, monkeypatch):
    assert settings.CELERY_TASK_ALWAYS_EAGER
    from apps.accounts import brute_force

    view_runs = threading.Event()
    claim = brute_force.sso_start_claim

    def slow_claim(request, email):  # the client leaves while the view runs, before its answer
        view_runs.set()
        time.sleep(0.5)
        return claim(request, email)

    monkeypatch.setattr(brute_force, "sso_start_claim", slow_claim)
    out = _run(_sso_start("sam@alpha.example", leaves=view_runs))
    assert "status" not in out  # Django cancelled the request: no response was sent, none closed
    assert [m.to for m in mail.outbox] == [["sam@alpha.example"]]
    assert "apps.accounts.tasks.sso_link_send_task" in caplog.text  # logged by name, nothing else
    assert "sam@alpha.example" not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_client_that_waits_is_sent_it_once(alpha_sso):
    out = _run(_sso_start("sam@alpha.example", leaves=None))
    assert out["status"] == 200
    assert [m.to for m in mail.outbox] == [["sam@alpha.example"]]


SSO_SETUP = r"""
import json
from apps.accounts.models import SSOConfig
from apps.organizations.models import Organization
org = Organization.objects.get(slug="bench")
SSOConfig.objects.create(organization=org, issuer="https://idp.bench.example/realms/staff", client_id="x",
                         allowed_domains="bench.example", enabled=True)
print("RESULT" + json.dumps({}))
"""


@pytest.mark.slow
def test_over_uvicorn_a_client_that_leaves_at_once_is_still_sent_its_e_mail(tmp_path):
    """The embedded default (no broker: the task runs in the server's process), e-mail to the
    console (the server's output): the client sends its request and closes the connection while
    the view runs (made a second slower: tests/core/slow_sso_asgi.py)."""
    from bench.ingest import harness

    inst = harness.prepare(tmp_path / "var", fast_db=True)
    inst.shell_json(SSO_SETUP)
    log = tmp_path / "server.log"
    body = urlencode({"email": "uploader@bench.example"}).encode()
    with uvicorn_server(inst.env, timeout=60, log=log, app="tests.core.slow_sso_asgi:application") as base:
        host, port = urlsplit(base).hostname, urlsplit(base).port
        request = (f"POST /accounts/sso/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   "Content-Type: application/x-www-form-urlencoded\r\n"
                   f"Content-Length: {len(body)}\r\nCookie: csrftoken={inst.csrf}\r\n"
                   f"X-CSRFToken: {inst.csrf}\r\n\r\n").encode() + body
        with socket.create_connection((host, port)) as client:
            client.sendall(request)
            time.sleep(0.5)  # the view runs (for a second): the client leaves before its answer
        deadline = time.monotonic() + 20
        while b"To: uploader@bench.example" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)
        said = log.read_bytes()
    assert b"To: uploader@bench.example" in said, said[-3000:]
    assert said.count(b"To: uploader@bench.example") == 1
    assert b'"POST /accounts/sso/ HTTP/1.1" 200' not in said  # it left before the answer
