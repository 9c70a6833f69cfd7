"""A case attachment too large to be held in memory (a report PDF past FILE_UPLOAD_MAX_MEMORY_SIZE,
2.5 MB) waits encrypted while the request runs, never in clear in the system's temporary folder
(found by review): Django's TemporaryFileUploadHandler wrote it to a named tmp*.upload.pdf there,
and under ASGI Django's handler first put the whole request body in a SpooledTemporaryFile, in
clear, past the same size (apps.core.uploads, apps.core.asgi).

The temporary folder is a test folder here; while the service stores the attachment, every file
in it and every file this process holds open in it (unlinked ones too, through /proc/self/fd) is
read: the patient's name in the report is in none of them."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from apps.cases import services
from apps.cases.models import Attachment
from tests.factories import CaseFactory
from tests.tempfolder import held_in

NAME = b"Fictional^Reported"
MB = 1024 * 1024


def _report() -> bytes:
    return b"%PDF-1.4\n% " + NAME + b"\n" + os.urandom(3 * MB) + b"\n% " + NAME + b"\n%%EOF\n"


@pytest.fixture
def scanned(monkeypatch, tmp_folder):
    """What the temporary folder holds while the service stores an attachment."""
    seen: list[list[bytes]] = []
    real = services.attachment_add

    def attachment_add(**kwargs):
        seen.append(held_in(tmp_folder))
        return real(**kwargs)

    monkeypatch.setattr(services, "attachment_add", attachment_add)
    return seen


def _assert_sealed(seen: list[list[bytes]], size: int) -> None:
    [held] = seen
    assert any(len(content) >= size for content in held), [len(c) for c in held]  # it did wait there
    for content in held:
        assert NAME not in content and b"%PDF" not in content


def _stored(case) -> bytes:
    from apps.imaging.blobs import open_blob

    attachment = Attachment.objects.get(case=case)
    with open_blob(attachment.blob) as fh:
        return fh.read()


@pytest.mark.django_db
def test_a_large_report_waits_encrypted_and_is_stored_whole(org_a, clinician_a, client_as, scanned):
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    pdf = _report()
    assert len(pdf) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    r = client_as(clinician_a).post(f"/cases/{case.public_id}/attachments/",
                                    {"file": _named(pdf, "report.pdf"), "kind": "report"})
    assert r.status_code == 302, r.content[:500]
    _assert_sealed(scanned, len(pdf))
    assert _stored(case) == pdf
    download = client_as(clinician_a).get(f"/attachments/{Attachment.objects.get().public_id}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == pdf


def _named(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/pdf")


def _run(coro):
    """asyncio.run on a thread of its own (a browser test may leave an event loop on this one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.mark.django_db(transaction=True)  # the request runs on the handler's thread and connection
def test_under_asgi_the_request_body_waits_encrypted_too(org_a, clinician_a, scanned):
    from portal.asgi import application

    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    pdf = _report()
    body = encode_multipart(BOUNDARY, {"file": _named(pdf, "report.pdf"), "kind": "report"})
    browser = Client()
    browser.force_login(clinician_a)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    csrf = "t" * 32
    path = f"/cases/{case.public_id}/attachments/"
    pieces = [body[i:i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]
    out: dict = {}

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client waits for the answer

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", MULTIPART_CONTENT.encode()),
                         (b"content-length", str(len(body)).encode()), (b"x-csrftoken", csrf.encode()),
                         (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}; csrftoken={csrf}".encode())],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    _run(application(scope, receive, send))
    assert out["status"] == 302, out
    _assert_sealed(scanned, len(body))
    assert _stored(case) == pdf
