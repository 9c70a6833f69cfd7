"""Stored images that cannot be read at the moment (S3-compatible storage unreachable): a download
and a viewer frame answer 503 saying so (a page, or JSON for the viewer), not a 500, and the viewer
is not told that the file is damaged."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from apps.imaging.middleware import StorageUnavailableMiddleware
from tests.storage_outages import S3_UNREACHABLE
from tests.viewer.conftest import make_ct_study

pytestmark = pytest.mark.django_db

MESSAGE = b"Stored files cannot be read or written at the moment"


@pytest.fixture
def study(org_a, clinician_a):
    return make_ct_study(org_a, clinician_a)


@pytest.fixture
def client(clinician_a):
    c = Client(raise_request_exception=False)
    c.force_login(clinician_a)
    return c


def test_a_download_while_storage_is_unreachable_is_a_503_page(client, study, settings):
    settings.STORAGES = {**settings.STORAGES, "default": S3_UNREACHABLE}
    url = reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + "?rendition=original"
    response = client.get(url, HTTP_ACCEPT="text/html")
    assert response.status_code == 503 and response["Retry-After"] == "60"
    assert MESSAGE in response.content


def test_a_viewer_frame_while_storage_is_unreachable_is_a_503_not_a_damaged_file(client, study, settings):
    settings.STORAGES = {**settings.STORAGES, "default": S3_UNREACHABLE}
    instance = study.phantom_instances[0]
    url = reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + "?quality=diagnostic"
    response = client.get(url, HTTP_ACCEPT="image/*,application/json")
    assert response.status_code == 503
    assert response.json()["error"] == "storage_unavailable"


def test_attaching_a_document_while_storage_cannot_be_written_is_a_503_and_saves_nothing(
    client, study, tmp_path, settings
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.cases.models import Attachment

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the storage root's folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "apps.imaging.storage.DirectFileSystemStorage",
            "OPTIONS": {"location": str(blocker / "root")},
        },
    }
    pdf = SimpleUploadedFile("report.pdf", b"%PDF-1.4\n%fictional report\n%%EOF\n", content_type="application/pdf")
    url = reverse("cases:attachment_add", kwargs={"case_id": study.case.public_id})
    response = client.post(url, {"kind": "report", "file": pdf}, HTTP_ACCEPT="text/html")
    assert response.status_code == 503 and MESSAGE in response.content
    assert not Attachment.objects.exists()


def test_a_storage_error_keeps_its_traceback_in_the_log_and_its_path_off_the_page(rf, caplog):
    """Every OSError a view raises is answered 503 here, whatever raised it (a storage outage, or a
    bug: a blob missing after a faulty sweep, a wrong path). The log keeps the traceback, at the
    level of the 500 it replaces, so such a bug is seen and traced; the answer names no path."""
    middleware = StorageUnavailableMiddleware(lambda request: None)
    try:
        raise FileNotFoundError(2, "No such file or directory", "/srv/lightbox/blobs/ab/cd/abcd")
    except OSError as exc:
        error = exc
        response = middleware.process_exception(rf.get("/"), exc)
    assert response.status_code == 503 and b"/srv/lightbox" not in response.content
    [logged] = [r for r in caplog.records if r.name == "apps.imaging.middleware"]
    assert logged.levelno == logging.ERROR and logged.exc_info[1] is error
