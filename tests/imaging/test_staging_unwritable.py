"""The tus staging folder cannot be written (a file where the folder should be; a device that
refuses writes): the client gets a 503 saying so in plain text, not a 500, nothing is saved or
acknowledged that is not on disk, and the upload resumes from its offset once writing works."""

from __future__ import annotations

import os

import pytest
from django.test import Client, override_settings

from apps.imaging import staging
from apps.imaging.models import Upload, UploadState
from apps.organizations.models import Role
from tests.factories import member
from tests.imaging.test_tus import ROOT, TUS, _meta, _patch

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(org_a):
    c = Client(raise_request_exception=False)
    c.force_login(member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"))
    return c


def test_creating_an_upload_where_the_staging_folder_cannot_be_made_is_a_503(client, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the staging folder should be")
    with override_settings(LIGHTBOX_UPLOAD_DIR=str(blocker / "uploads")):
        response = client.post(ROOT, HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_meta(filename="a.dcm"), **TUS)
    assert response.status_code == 503 and response["Retry-After"] == "60"
    assert response["Content-Type"].startswith("text/plain")
    assert b"cannot store uploads at the moment" in response.content
    assert not Upload.objects.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_chunk_the_staging_file_refuses_is_a_503_and_the_upload_resumes(client, small_ct):
    data = sorted(small_ct.iterdir())[0].read_bytes()
    half = len(data) // 2
    created = client.post(ROOT, HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_UPLOAD_METADATA=_meta(filename="a.dcm"), **TUS)
    url = created["Location"].split("testserver", 1)[-1]
    assert _patch(client, url, 0, data[:half]).status_code == 204
    path = staging.staging_path(Upload.objects.get().staging_name)
    path.rename(path.with_name("kept"))
    os.symlink("/dev/full", path)  # every write refused by the device
    response = _patch(client, url, half, data[half:])
    assert response.status_code == 503 and b"resumes where it stopped" in response.content
    assert client.head(url, **TUS)["Upload-Offset"] == str(half)  # nothing acknowledged that is not stored
    path.unlink()
    path.with_name("kept").rename(path)  # writing works again
    assert _patch(client, url, half, data[half:]).status_code == 204
    assert Upload.objects.get().state == UploadState.COMPLETE
