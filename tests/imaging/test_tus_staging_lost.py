"""A staging file lost while its upload still takes bytes (deleted by hand, a restore that missed
it): what the upload received is gone and nothing can resume it. The next PATCH or HEAD expires
the upload (claimed and recorded as the expiry sweep does) and answers 410 Gone, so the client
starts a new upload, instead of a 503 "try again later" at each resume and an offset that HEAD
kept reporting until the upload expired. No staging file is made again."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.imaging import staging, uploads
from apps.imaging.models import Upload, UploadState
from apps.organizations.models import Role
from tests.factories import member
from tests.imaging.test_tus import ROOT, TUS, _meta, _patch

pytestmark = pytest.mark.django_db

DATA = b"\0" * 1000


@pytest.fixture
def client(org_a):
    c = Client(raise_request_exception=False)
    c.force_login(member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"))
    return c


def _half_sent(client) -> tuple[str, Upload]:
    created = client.post(ROOT, HTTP_UPLOAD_LENGTH=str(len(DATA)), HTTP_UPLOAD_METADATA=_meta(filename="a.dcm"),
                          **TUS)
    url = created["Location"].split("testserver", 1)[-1]
    assert _patch(client, url, 0, DATA[:500]).status_code == 204
    upload = Upload.objects.get()
    staging.staging_path(upload.staging_name).unlink()  # lost from the staging folder
    return url, upload


def _expired_once(upload: Upload) -> None:
    upload.refresh_from_db()
    assert upload.state == UploadState.EXPIRED and upload.offset == 500
    events = AuditEvent.objects.filter(action="imaging.upload_expired")
    assert [e.details for e in events] == [{"bytes": 500, "staging_lost": True}]
    assert not staging.staging_path(upload.staging_name).exists()  # not made again
    assert not staging.staging_path(f"{upload.staging_name}.iv").exists()


def test_a_patch_after_the_staging_file_is_lost_is_410_and_expires_the_upload(client):
    url, upload = _half_sent(client)
    response = _patch(client, url, 500, DATA[500:])
    assert response.status_code == 410 and b"expired" in response.content
    _expired_once(upload)
    assert client.head(url, **TUS).status_code == 410
    assert _patch(client, url, 500, DATA[500:]).status_code == 410
    assert uploads.uploads_expire() == 0
    _expired_once(upload)


def test_a_head_after_the_staging_file_is_lost_is_410_and_expires_the_upload(client):
    url, upload = _half_sent(client)
    response = client.head(url, **TUS)
    assert response.status_code == 410 and "Upload-Offset" not in response
    _expired_once(upload)
    assert _patch(client, url, 500, DATA[500:]).status_code == 410
    _expired_once(upload)


def test_an_upload_ended_meanwhile_is_left_as_it_is(client):
    _url, upload = _half_sent(client)
    Upload.objects.filter(pk=upload.pk).update(state=UploadState.TERMINATED)  # cancelled after it was read
    assert uploads.upload_staging_lost(upload) is True and upload.state == UploadState.TERMINATED
    assert not AuditEvent.objects.filter(action="imaging.upload_expired").exists()


def test_an_upload_whose_file_is_there_is_not_lost(client):
    created = client.post(ROOT, HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_meta(filename="a.dcm"), **TUS)
    upload = Upload.objects.get()
    assert uploads.upload_staging_lost(upload) is False
    url = created["Location"].split("testserver", 1)[-1]
    assert client.head(url, **TUS)["Upload-Offset"] == "0"
    upload.refresh_from_db()
    assert upload.state == UploadState.UPLOADING
