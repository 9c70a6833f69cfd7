"""An original whose stored file was altered (its encrypted bytes changed since it was written:
the blob's integrity check fails) is not "cannot be read as DICOM" in the viewer (found by review):
the frame answers a JSON integrity error of its own (not a 500), the failure is logged as an error
and recorded for the security officer (``blob.integrity_failed``), once per read attempt, naming
the image by its public id only."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.exceptions import InvalidTag
from django.test import Client
from django.urls import reverse

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.imaging import pixels
from bench.frames_synthetic import store_ct_phantom
from tests.factories import CaseFactory, StudyFactory, blob_alter

pytestmark = pytest.mark.django_db


def _frame_url(instance, quality: str) -> str:
    return reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + f"?quality={quality}"


@pytest.mark.parametrize("quality", ["diagnostic", "preview"])
def test_a_frame_of_an_altered_original_is_an_integrity_error_and_recorded(clinician_a, ct_study, caplog,
                                                                           quality):
    altered, intact = ct_study.phantom_instances[3], ct_study.phantom_instances[4]
    blob_alter(altered.blob)
    client = Client(raise_request_exception=False)
    client.force_login(clinician_a)
    caplog.set_level(logging.INFO)

    response = client.get(_frame_url(altered, quality))

    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["X-Lightbox-Frame"] == "integrity"
    assert "no-store" in response["Cache-Control"]
    body = json.loads(response.content)
    assert body["error"] == "integrity" and "integrity check" in body["message"]
    assert "cannot be read as DICOM" not in response.content.decode()
    event = AuditEvent.objects.get(action=A.BLOB_INTEGRITY_FAILED)
    assert event.outcome == "failed" and event.actor_id == clinician_a.pk
    assert event.organization_id == ct_study.organization_id
    assert (event.target_type, event.target_id) == ("instance", str(altered.public_id))
    assert event.study_ref == ct_study.public_id and event.case_ref == ct_study.case.public_id
    assert event.details == {"read": "viewer_frame", "quality": quality}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "integrity" in r.getMessage()]
    assert len(errors) == 1 and str(altered.public_id) in errors[0].getMessage()
    assert not any("cannot be read as DICOM" in r.getMessage() or "unreadable header" in r.getMessage()
                   for r in caplog.records)
    # once per read attempt; the study's other images are still shown
    client.get(_frame_url(altered, quality))
    assert AuditEvent.objects.filter(action=A.BLOB_INTEGRITY_FAILED).count() == 2
    other = client.get(_frame_url(intact, quality))
    assert other.status_code == 200 and other["Content-Type"].startswith("image/")


@pytest.mark.parametrize("where", ["header", "pixel data"])
def test_pixels_pass_an_integrity_failure_on_rather_than_call_the_file_undecodable(org_a, clinician_a, where):
    """Altered in the header's chunk (read first) or in a later chunk holding the pixel data (read
    when the frame is decoded), the read raises InvalidTag, never UndecodableFrame."""
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    study = StudyFactory(organization=org_a, case=case)
    instance = store_ct_phantom(study=study, slices=1, rows=1024, columns=1024)[0]  # 2 MB: three 1 MiB chunks
    blob_alter(instance.blob, offset=40 if where == "header" else 1_600_000)
    with pytest.raises(InvalidTag):
        pixels.load_frame(instance, 0)
