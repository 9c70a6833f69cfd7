"""tus PATCH bodies under ASGI (portal.asgi.application, in process): streamed from the receive
channel into the encrypted staging file, never spooled by Django; a connection that drops
mid-body keeps what arrived unless the chunk carried a checksum; a request left waiting for the
body of a dead connection gives way to the client's next request for the same upload."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.handlers import asgi as django_asgi

from apps.imaging import asgi as tus_asgi
from apps.imaging.models import Upload
from apps.imaging.uploads import upload_open
from portal.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

PIECE = 64 * 1024


def _run(coro):
    """asyncio.run on a thread of its own: a browser test earlier in the same process leaves
    Playwright's event loop running on this thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()




async def _call(method: str, path: str, headers: list, pieces: list[bytes], *, end: str = "complete",
                length: int | None = None) -> dict:
    """One request; ``end``: "complete" (the body ends), "disconnect" (the client goes away
    after the pieces) or "hang" (no more bytes, no disconnect: a dead connection)."""
    queue = [{"type": "http.request", "body": p, "more_body": end != "complete" or i < len(pieces) - 1}
             for i, p in enumerate(pieces)] or [{"type": "http.request", "body": b"", "more_body": False}]
    out: dict = {}

    async def receive():
        if queue:
            return queue.pop(0)
        if end == "disconnect":
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode().lower(): v.decode() for k, v in message["headers"]}

    size = sum(map(len, pieces)) if length is None else length
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [*headers, (b"content-length", str(size).encode())],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    await application(scope, receive, send)
    return out


def _create(headers, length: int) -> str:
    meta = b"filename " + base64.b64encode(b"study.zip")
    r = _run(_call("POST", "/api/v1/uploads/", [*headers, (b"upload-length", str(length).encode()),
                                                      (b"upload-metadata", meta)], []))
    assert r["status"] == 201, r
    return r["headers"]["location"].split("testserver", 1)[-1]


def _patch_headers(headers, offset: int, data: bytes | None = None) -> list:
    extra = [(b"content-type", b"application/offset+octet-stream"), (b"upload-offset", str(offset).encode())]
    if data is not None:
        extra.append((b"upload-checksum", b"sha1 " + base64.b64encode(hashlib.sha1(data).digest())))
    return [*headers, *extra]


def _pieces(data: bytes) -> list[bytes]:
    return [data[i:i + PIECE] for i in range(0, len(data), PIECE)]


def _staged(upload: Upload) -> bytes:
    with upload_open(upload) as fh:
        return fh.read()


def test_large_chunk_streams_to_staging_without_spooling(headers, monkeypatch, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    spooled = []
    real = django_asgi.tempfile.SpooledTemporaryFile

    class Recording(real):
        def write(self, data):
            spooled.append(len(data))
            return super().write(data)

    monkeypatch.setattr(django_asgi.tempfile, "SpooledTemporaryFile", Recording)
    data = os.urandom(5 * 1024 * 1024 + 123)  # five times Django's in-memory body limit
    url = _create(headers, len(data) + 10)
    r = _run(_call("PATCH", url, _patch_headers(headers, 0, data), _pieces(data)))
    assert r["status"] == 204, r
    assert r["headers"]["upload-offset"] == str(len(data))
    upload = Upload.objects.get()
    assert upload.offset == len(data) and _staged(upload) == data
    assert sum(spooled) == 0, "Django spooled the body (to a temporary file, in clear, past its limit)"


def test_the_body_arrives_while_the_request_is_authenticated(headers, monkeypatch):
    """The first bytes are received as the request arrives, not once the view starts reading:
    the transfer goes on during the middleware and the view's checks."""
    from apps.imaging import tus

    received: list[int] = []
    seen_by_the_view: list[int] = []
    writer = tus.uploads.upload_writer

    def upload_writer(upload, wait=0):
        deadline = time.monotonic() + 2
        while not received and time.monotonic() < deadline:  # the view has not read a byte yet
            time.sleep(0.01)
        seen_by_the_view.append(len(received))
        return writer(upload, wait=wait)

    monkeypatch.setattr(tus.uploads, "upload_writer", upload_writer)
    data = os.urandom(2 * 1024 * 1024)
    url = _create(headers, len(data) + 10)  # not complete: the staging file stays for the check
    real_call = tus_asgi.BodyStream._message

    async def message(self):
        got = await real_call(self)
        received.append(len(got.get("body", b"")))
        return got

    monkeypatch.setattr(tus_asgi.BodyStream, "_message", message)
    r = _run(_call("PATCH", url, _patch_headers(headers, 0, data), _pieces(data)))
    assert r["status"] == 204, r
    assert seen_by_the_view and seen_by_the_view[0] > 0, "nothing was received before the view read"
    assert _staged(Upload.objects.get()) == data


def test_django_hears_of_a_disconnect_only_once_the_view_has_the_body():
    """The body arrives while Django authenticates the request, so the client can be gone before
    the view reads a byte. Django's disconnect listener would then abandon the request and what
    arrived would be lost: the wrapper holds the disconnect back until the view has the body."""
    heard: list[str] = []

    async def django(scope, receive, send):
        assert (await receive())["body"] == b""  # the body Django reads itself
        listener = asyncio.ensure_future(receive())  # as Django's listen_for_disconnect
        await asyncio.sleep(0.3)  # every piece, and the disconnect, have arrived by now
        heard.append("early" if listener.done() else "not yet")
        stream = scope[tus_asgi.SCOPE_KEY]
        got = await stream._take(10 * PIECE)
        heard.append(str(len(got)))
        heard.append((await asyncio.wait_for(listener, 1))["type"])  # now it may hear it

    pieces = [os.urandom(PIECE) for _ in range(3)]
    queue = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "PATCH", "path": "/api/v1/uploads/x/",
             "headers": [(b"content-type", b"application/offset+octet-stream")]}
    _run(tus_asgi.tus_body_passthrough(django)(scope, receive, None))
    assert heard == ["not yet", str(3 * PIECE), "http.disconnect"]


def test_dropped_connection_keeps_what_arrived_unless_checksummed(headers):
    data = os.urandom(8 * PIECE)
    url = _create(headers, len(data) + 1)  # one byte short of complete: the staging file stays
    # with a checksum the chunk cannot be verified: nothing kept
    _run(_call("PATCH", url, _patch_headers(headers, 0, data), _pieces(data)[:3], end="disconnect",
                      length=len(data)))
    assert Upload.objects.get().offset == 0
    # without one (browsers' tus-js-client): the bytes that arrived are kept, the client resumes there
    _run(_call("PATCH", url, _patch_headers(headers, 0), _pieces(data)[:3], end="disconnect",
                      length=len(data)))
    upload = Upload.objects.get()
    assert upload.offset == 3 * PIECE and _staged(upload) == data[:3 * PIECE]
    r = _run(_call("PATCH", url, _patch_headers(headers, upload.offset), _pieces(data[3 * PIECE:])))
    assert r["status"] == 204 and r["headers"]["upload-offset"] == str(len(data))
    assert _staged(Upload.objects.get()) == data


def test_resumed_request_takes_over_from_a_dead_connection(headers, monkeypatch):
    monkeypatch.setattr(tus_asgi, "POLL", 0.05)
    data = os.urandom(8 * PIECE)
    url = _create(headers, len(data) + 1)

    async def both():
        # the first request's connection died silently (no FIN, no RST): it waits for bytes
        dead = asyncio.ensure_future(_call("PATCH", url, _patch_headers(headers, 0, data), _pieces(data)[:2],
                                           end="hang", length=len(data)))
        await asyncio.sleep(0.5)
        resumed = await asyncio.wait_for(_call("PATCH", url, _patch_headers(headers, 0, data), _pieces(data)),
                                         timeout=20)
        await asyncio.wait_for(dead, timeout=5)
        return resumed

    r = _run(both())
    assert r["status"] == 204, r
    upload = Upload.objects.get()
    assert upload.offset == len(data) and _staged(upload) == data
