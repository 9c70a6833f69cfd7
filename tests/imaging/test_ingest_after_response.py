"""Where tasks run eagerly (the embedded default, no broker), an upload's ingest runs once the
response of its last PATCH has been sent, not inside it (found by QA: the last PATCH was held
for the whole ingest, 17-35 s, and the upload page said "Uploading · 100%" all along);
apps.core.queue ``eager_after_response``, apps.core.middleware.AfterResponseMiddleware."""

from __future__ import annotations

import base64

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, RequestFactory

from apps.imaging.models import IngestJob, JobState, Study, Upload, UploadState
from apps.organizations.models import Role
from tests.factories import member

ROOT = "/api/v1/uploads/"
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
OCTET = "application/offset+octet-stream"


@pytest.mark.django_db(transaction=True)  # the request commits for real: its on_commit runs in it
def test_the_last_patch_answers_before_the_ingest_which_runs_once_the_response_is_sent(org_a, small_ct_zip):
    assert settings.CELERY_TASK_ALWAYS_EAGER
    uploader = member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")
    client = Client()
    client.force_login(uploader)
    page = client.get("/studies/upload/")
    assert page.status_code == 200
    csrf = client.cookies["csrftoken"].value
    data = small_ct_zip.read_bytes()
    created = client.post(ROOT, HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_X_CSRFTOKEN=csrf,
                          HTTP_UPLOAD_METADATA="filename " + base64.b64encode(b"ct.zip").decode(), **TUS)
    assert created.status_code == 201, created.content
    url = created["Location"].split("testserver", 1)[-1]
    half = len(data) // 2
    first = client.generic("PATCH", url, data[:half], content_type=OCTET, HTTP_UPLOAD_OFFSET="0",
                           HTTP_X_CSRFTOKEN=csrf, **TUS)
    assert first.status_code == 204

    # the last chunk, as a WSGI server serves it: the application called, the whole answer read,
    # then the response closed (the server has sent it)
    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    environ = RequestFactory().generic("PATCH", url, data[half:], content_type=OCTET, HTTP_UPLOAD_OFFSET=str(half),
                                       HTTP_X_CSRFTOKEN=csrf, HTTP_COOKIE=cookies, REMOTE_ADDR="203.0.113.7",
                                       **TUS).environ
    statuses: list[str] = []
    response = WSGIHandler()(environ, lambda status, headers, *exc: statuses.append(status))
    b"".join(response)
    assert statuses == ["204 No Content"] and response["Upload-Offset"] == str(len(data))
    upload = Upload.objects.get()
    assert upload.state == UploadState.COMPLETE
    job = IngestJob.objects.get(upload=upload)
    assert job.state == JobState.QUEUED and job.files_ingested == 0  # answered: the ingest not run yet
    assert not Study.objects.exists()
    # what the page polls meanwhile: the job, queued
    assert client.get(url).json()["job"]["state"] == JobState.QUEUED

    response.close()  # the server has sent it: the ingest runs now, then the study's renditions
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.files_ingested == 6
    study = Study.objects.get()
    assert study.num_instances == 6
    assert client.get(url).json()["job"]["studies"][0]["id"] == str(study.public_id)
