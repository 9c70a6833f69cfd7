"""Two requests appending to the same tus upload at once (two browser tabs uploading the same
file: the second tab's tus-js-client resumes the first one's upload from localStorage). One
writer at a time; a request that finds the offset moved once it holds the upload gets a 409 and
changes nothing, neither the offset nor a byte of the staging file; the staged bytes are the
file's, and the upload is completed once.

In process (portal.asgi.application, on the test database: PostgreSQL or SQLite) and end to
end (uvicorn with several worker processes on loopback, SQLite, the ingest run)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from apps.imaging import asgi as tus_asgi
from apps.imaging import staging, tus, uploads
from apps.imaging.models import Upload, UploadQuerySet, UploadState
from portal.asgi import application
from tests.imaging.test_tus_stream import PIECE, _call, _create, _patch_headers, _pieces, _run, _staged

pytestmark = pytest.mark.django_db(transaction=True)


async def _paced(path: str, headers: list, pieces: list[bytes], pause: float,
                 last: asyncio.Event | None = None) -> dict:
    """A PATCH whose body arrives piece by piece, ``pause`` seconds apart (a live connection
    sending a chunk: never idle long enough to be taken for a dead one); its last piece once
    ``last`` is set, when given."""
    size = sum(map(len, pieces))
    queue = list(pieces)
    out: dict = {}

    async def receive():
        if not queue:
            await asyncio.Event().wait()
        await asyncio.sleep(pause)
        if last is not None and len(queue) == 1:
            await last.wait()
        piece = queue.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(queue)}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode().lower(): v.decode() for k, v in message["headers"]}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PATCH",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [*headers, (b"content-length", str(size).encode())],
             "client": ("127.0.0.1", 5001), "server": ("testserver", 80)}
    await application(scope, receive, send)
    return out


def test_a_request_waiting_for_a_live_writer_changes_nothing_once_the_offset_moved(headers):
    """Tab 2 PATCHes at the offset tab 1's PATCH starts from: it waits for tab 1's chunk,
    then finds the offset moved: 409 at the new offset, and tab 1's bytes stay (they were cut
    back to the stale offset, so the file came out with a hole of garbage)."""
    data = os.urandom(16 * PIECE)
    half = len(data) // 2
    url = _create(headers, len(data) + 1)  # one byte short of complete: the staging file stays

    async def both():
        first = asyncio.ensure_future(_paced(url, _patch_headers(headers, 0), _pieces(data[:half]), 0.05))
        await asyncio.sleep(0.15)  # the first holds the upload, its body still arriving
        second = await asyncio.wait_for(_call("PATCH", url, _patch_headers(headers, 0), _pieces(data[:half])),
                                        timeout=20)
        return await asyncio.wait_for(first, timeout=20), second

    first, second = _run(both())
    assert first["status"] == 204 and first["headers"]["upload-offset"] == str(half), first
    assert second["status"] == 409 and second["headers"]["upload-offset"] == str(half), second
    upload = Upload.objects.get()
    assert upload.offset == half and _staged(upload) == data[:half]
    r = _run(_call("PATCH", url, _patch_headers(headers, half), _pieces(data[half:])))
    assert r["status"] == 204, r
    assert _staged(Upload.objects.get()) == data


def test_a_request_waiting_for_the_lock_of_an_upload_gone_meanwhile_is_told_so(headers):
    """The upload's row deleted while a request waited for its lock: 404, not a 409 saying
    "Upload-Offset: None"."""
    from asgiref.sync import sync_to_async

    data = os.urandom(8 * PIECE)
    url = _create(headers, len(data) * 2)

    async def both():
        first = asyncio.ensure_future(_paced(url, _patch_headers(headers, 0), _pieces(data), 0.05))
        await asyncio.sleep(0.15)  # the first holds the upload, its body still arriving
        second = asyncio.ensure_future(_call("PATCH", url, _patch_headers(headers, 0), _pieces(data)))
        await asyncio.sleep(0.1)  # the second waits for the lock
        await sync_to_async(Upload.objects.all().delete)()
        return await asyncio.wait_for(first, timeout=20), await asyncio.wait_for(second, timeout=20)

    _first, second = _run(both())
    assert second["status"] == 404, second
    assert "upload-offset" not in second["headers"]


def test_a_cut_writer_keeps_exactly_what_arrived_and_the_request_taking_over_writes_nothing(headers, monkeypatch):
    """A connection that went quiet (no checksum: browsers) gives way to the next request for
    the upload: it keeps the bytes that arrived, and the request that asked it to stop, sent
    at the old offset, gets a 409 at the new one without touching them."""
    monkeypatch.setattr(tus_asgi, "POLL", 0.05)
    data = os.urandom(8 * PIECE)
    url = _create(headers, len(data) + 1)

    async def both():
        quiet = asyncio.ensure_future(_call("PATCH", url, _patch_headers(headers, 0), _pieces(data)[:2],
                                            end="hang", length=len(data)))
        await asyncio.sleep(0.5)
        taking_over = await asyncio.wait_for(_call("PATCH", url, _patch_headers(headers, 0), _pieces(data)),
                                             timeout=20)
        await asyncio.wait_for(quiet, timeout=5)
        return taking_over

    r = _run(both())
    assert r["status"] == 409 and r["headers"]["upload-offset"] == str(2 * PIECE), r
    upload = Upload.objects.get()
    assert upload.offset == 2 * PIECE and _staged(upload) == data[:2 * PIECE]
    r = _run(_call("PATCH", url, _patch_headers(headers, upload.offset), _pieces(data[2 * PIECE:])))
    assert r["status"] == 204, r
    assert _staged(Upload.objects.get()) == data


# --- an upload cancelled or expired under a PATCH ---------------------------------------------------
#
# Cancelling (tus termination: the page's Forget sends it too) and the expiry sweep do not wait
# for the staging file's lock: they claim the upload (a conditional UPDATE), then delete its
# staging file. A PATCH that passed the view's checks before that, and waits for the lock or
# holds it, learns of it under the lock: it writes nothing, moves no offset, answers 404 (gone)
# or 410 (expired), and never makes the staging file again.

AFTER_EXPIRY = timedelta(hours=25)  # past any upload made now (LIGHTBOX_UPLOAD_EXPIRY_HOURS: 24)


def _left(upload: Upload) -> list[str]:
    """The files the upload has in the staging folder (its staging file, its stop request)."""
    return sorted(p.name for p in staging.staging_dir().glob(f"{upload.staging_name}*"))


async def _end(how: str, url: str, headers: list) -> None:
    """The upload is cancelled (DELETE: tus termination, the page's Forget), swept as expired
    (the scheduled task), or its time runs out (no sweep yet)."""
    if how == "cancelled":
        r = await _call("DELETE", url, headers, [])
        assert r["status"] == 204, r
    elif how == "swept":
        assert await asyncio.to_thread(uploads.uploads_expire, timezone.now() + AFTER_EXPIRY) == 1
    else:
        await asyncio.to_thread(lambda: Upload.objects.update(expires_at=timezone.now() - timedelta(seconds=1)))


async def _until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


ENDS = [("cancelled", 404), ("swept", 410), ("timed_out", 410)]


@pytest.mark.parametrize(("how", "status"), ENDS)
def test_a_patch_waiting_for_the_lock_writes_nothing_into_an_upload_ended_meanwhile(headers, how, status):
    """The PATCH passed the view's checks and waits for the lock another request holds; the
    upload is ended meanwhile. Once it holds the lock it finds that out: nothing written, the
    offset and the expiry where they were, and nothing left in the staging folder but what the
    upload's own end leaves (it took the bytes into the discarded file, moved the offset of the
    ended upload and answered 204)."""
    data = os.urandom(4 * PIECE)
    url = _create(headers, len(data) + 1)
    upload = Upload.objects.get()
    held = staging.StagingWriter(staging.staging_path(upload.staging_name), uploads.upload_key(upload))
    stop = staging.staging_path(upload.staging_name + ".stop")

    async def scenario():
        waiting = asyncio.ensure_future(_call("PATCH", url, _patch_headers(headers, 0), _pieces(data)))
        try:
            await _until(stop.exists)  # it asks the holder to stop: it waits for the lock
            await _end(how, url, headers)
        finally:
            held.close()
        return await asyncio.wait_for(waiting, timeout=20)

    r = _run(scenario())
    assert r["status"] == status, r
    ended = Upload.objects.get()
    assert ended.offset == 0
    if how == "timed_out":  # still the sweep's to delete: untouched
        assert ended.expires_at < timezone.now() and _left(upload) == [upload.staging_name]
        assert staging.staging_path(upload.staging_name).stat().st_size == 0
    else:
        assert _left(upload) == []


@pytest.mark.parametrize(("how", "status"), ENDS[:2])
def test_a_patch_whose_upload_ended_before_it_opened_the_staging_file_makes_none(headers, monkeypatch, how,
                                                                                   status):
    """Ended between the view's checks and the writer opening the staging file: the writer does
    not make the file again (it did, as an orphan holding the PATCH's bytes, with a 204)."""
    data = os.urandom(2 * PIECE)
    url = _create(headers, len(data) + 1)
    upload = Upload.objects.get()
    writer = tus.uploads.upload_writer

    def upload_writer(upload, wait=0):
        _run(_end(how, url, headers))
        return writer(upload, wait=wait)

    monkeypatch.setattr(tus.uploads, "upload_writer", upload_writer)
    r = _run(_call("PATCH", url, _patch_headers(headers, 0), _pieces(data)))
    assert r["status"] == status, r
    assert Upload.objects.get().offset == 0 and _left(upload) == []


@pytest.mark.parametrize(("how", "status"), ENDS[:2])
def test_a_patch_writing_when_its_upload_ends_does_not_move_its_offset(headers, monkeypatch, how, status):
    """Ended while the body of the PATCH holding the lock arrives: its bytes go with the
    discarded file, the ended upload's offset does not move, and the client is told (404, 410)
    rather than 204."""
    data = os.urandom(8 * PIECE)
    url = _create(headers, len(data) + 1)
    upload = Upload.objects.get()
    holding = threading.Event()
    writer = tus.uploads.upload_writer

    def upload_writer(upload, wait=0):
        try:
            return writer(upload, wait=wait)
        finally:
            holding.set()

    monkeypatch.setattr(tus.uploads, "upload_writer", upload_writer)

    async def scenario():
        last = asyncio.Event()
        writing = asyncio.ensure_future(_paced(url, _patch_headers(headers, 0), _pieces(data), 0.01, last))
        await _until(holding.is_set)  # it holds the lock, its body arriving
        await _end(how, url, headers)
        last.set()
        return await asyncio.wait_for(writing, timeout=20)

    r = _run(scenario())
    assert r["status"] == status, r
    assert Upload.objects.get().offset == 0 and _left(upload) == []


def test_the_expiry_sweep_leaves_an_upload_a_patch_renewed_after_the_listing(headers, monkeypatch):
    """The sweep lists the uploads past their time, then claims each. A PATCH that began before
    the upload's time ran out and ends between the two renews it (its 204 says until when): the
    sweep leaves it, and its staging file, alone (it expired it, deleting the bytes just
    acknowledged)."""
    data = os.urandom(2 * PIECE)
    url = _create(headers, len(data) + 1)
    upload = Upload.objects.get()
    Upload.objects.update(expires_at=timezone.now() + timedelta(minutes=1))
    real = UploadQuerySet.expired
    answered = []

    def expired(self, now=None):
        listed = list(real(self, now))

        def then_the_patch_ends():
            for row in listed:
                answered.append(_run(_call("PATCH", url, _patch_headers(headers, 0), _pieces(data))))
                yield row
        return then_the_patch_ends()

    monkeypatch.setattr(UploadQuerySet, "expired", expired)
    assert uploads.uploads_expire(timezone.now() + timedelta(minutes=2)) == 0
    assert answered[0]["status"] == 204, answered
    renewed = Upload.objects.get()
    assert renewed.state == UploadState.UPLOADING and renewed.offset == len(data)
    assert _staged(renewed) == data and _left(upload) == [upload.staging_name]


# --- end to end: two "tabs" against several server processes ---------------------------------------

TAB_CHUNK = 1024 * 1024
TAB_PIECE = 64 * 1024


def _tab(base: str, url: str, inst, data: bytes, seen: list[int], stop: threading.Event) -> None:
    """What tus-js-client does in a tab resuming ``url``: HEAD for the offset, PATCH the next
    chunk from there (no checksum, as browsers send), and on a 409 or 423 ask again. The body
    goes out in pieces a little apart, so that the two tabs' PATCHes overlap."""
    where = urlsplit(base)
    path = urlsplit(url).path
    common = {**inst.headers(), "Tus-Resumable": "1.0.0"}
    while not stop.is_set():
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
        try:
            conn.request("HEAD", path, headers=common)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            offset = int(response.getheader("Upload-Offset"))
            if offset >= len(data):
                return
            chunk = data[offset:offset + TAB_CHUNK]
            conn.putrequest("PATCH", path)
            for name, value in {**common, "Content-Type": "application/offset+octet-stream",
                                "Upload-Offset": str(offset), "Content-Length": str(len(chunk))}.items():
                conn.putheader(name, value)
            conn.endheaders()
            for at in range(0, len(chunk), TAB_PIECE):
                conn.send(chunk[at:at + TAB_PIECE])
                time.sleep(0.005)
            response = conn.getresponse()
            response.read()
            seen.append(response.status)
            assert response.status in (204, 409, 423), response.status
        finally:
            conn.close()


@pytest.mark.slow
def test_two_tabs_sending_the_same_file_to_several_workers_store_it_intact(tmp_path):
    from pydicom.uid import generate_uid

    from bench.ingest import harness
    from bench.ingest.synthetic import ct_slice

    inst = harness.prepare(tmp_path / "var", fast_db=True)
    source = tmp_path / "big.dcm"
    ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=2048,
             columns=2048).save_as(source, enforce_file_format=True)
    data = source.read_bytes()
    assert len(data) > 8 * 1024 * 1024
    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "3", "--log-level", "warning"],
        cwd=harness.ROOT, env=inst.env, stdout=log, stderr=subprocess.STDOUT)
    try:
        harness.wait_answering(server, f"{base}/healthz", timeout=60)
        uploader = harness.make_uploader(base, inst, source, chunk_size=TAB_CHUNK)
        uploader.upload_chunk()  # tab 1 creates the upload and sends its first chunk; tab 2 finds it
        url = uploader.url
        seen: list[int] = []
        stop = threading.Event()
        errors: list[BaseException] = []

        def run():
            try:
                _tab(base, url, inst, data, seen, stop)
            except BaseException as exc:  # reported by the test (a thread's error is lost otherwise)
                errors.append(exc)
                stop.set()

        tabs = [threading.Thread(target=run) for _ in range(2)]
        for t in tabs:
            t.start()
        for t in tabs:
            t.join(timeout=300)
        assert not errors, errors
        assert 409 in seen or 423 in seen, f"the tabs never met: {seen}"
        status = harness.wait_for_ingest(url, inst, timeout=120)
        stored = harness.verify(inst)
    finally:
        harness.stop(server)
        log.close()
    assert status["state"] == "complete" and status["offset"] == len(data)
    job = status["job"]
    assert job["state"] == "done" and job["files_ingested"] == 1 and job["files_skipped"] == 0, job
    assert [s["state"] for s in stored["studies"]] == ["ready"]
    expected = hashlib.sha256(data).hexdigest()
    assert [v[:2] for v in stored["instances"].values()] == [[expected, expected]]
