"""An education image whose stored file was altered (its encrypted bytes changed since it was
written: the blob's integrity check fails) is left out of the patient portal, the rest of the page
and the study's other images shown; it is logged as an error and recorded for the security officer
(``blob.integrity_failed``, naming the image by its public id), never a 500 (found by review: one
altered blob took the patient's whole portal down)."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse
from pydicom.uid import generate_uid

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.renditions.models import Kind, RenditionFile
from tests.factories import blob_alter

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_series_study(org_a, edu_case, tmp_path):
    """A ready study of two series (fictional patient), so its education copy has two images."""
    from apps.imaging.models import Study
    from apps.imaging.services import ingest_job_create, ingest_job_run
    from apps.renditions.services import study_renditions_make
    from bench.ingest.synthetic import write_ct_series

    study_uid = generate_uid()
    for name in ("one", "two"):
        write_ct_series(tmp_path / name, slices=1, rows=64, columns=64, study_uid=study_uid)
    job = ingest_job_create(organization=org_a, source_path=str(tmp_path), case=edu_case, enqueue=False)
    ingest_job_run(job_id=job.pk)
    study = Study.objects.get(case=edu_case)
    study_renditions_make(study_id=study.pk)
    return study


def _portal(user) -> tuple[int, str]:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    response = client.get(reverse("education:portal"))
    return response.status_code, response.content.decode()


def test_an_altered_education_image_is_left_out_and_recorded(two_series_study, edu_share, patient, caplog):
    files = list(RenditionFile.objects.filter(study=two_series_study, kind=Kind.EDUCATION,
                                              image_blob__isnull=False).select_related("instance", "image_blob"))
    assert len(files) == 2
    status, html = _portal(patient)
    assert status == 200 and html.count('data-testid="education-image"') == 2
    altered = files[0]
    blob_alter(altered.image_blob)
    caplog.set_level(logging.INFO)
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()

    status, html = _portal(patient)

    assert status == 200
    assert html.count('data-testid="education-image"') == 1  # the other image is still shown
    events = list(AuditEvent.objects.filter(id__gt=before, action=A.BLOB_INTEGRITY_FAILED))
    assert len(events) == 1
    event = events[0]
    assert event.outcome == "failed" and event.actor_id == patient.pk
    assert event.organization_id == two_series_study.organization_id
    assert (event.target_type, event.target_id) == ("instance", str(altered.instance.public_id))
    assert event.study_ref == two_series_study.public_id
    assert event.details == {"read": "education_image", "file": str(altered.public_id)}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "integrity" in r.getMessage()]
    assert len(errors) == 1 and str(altered.instance.public_id) in errors[0].getMessage()
    logged = " ".join(r.getMessage() for r in caplog.records)
    patient_record = edu_share[0].case.patient
    assert patient_record.name not in logged and patient_record.mrn not in logged
    # each showing of the page reads it again: recorded again (once per read attempt)
    _portal(patient)
    assert AuditEvent.objects.filter(id__gt=before, action=A.BLOB_INTEGRITY_FAILED).count() == 2


def test_an_altered_original_behind_a_missing_education_image_is_recorded(two_series_study, edu_share, patient):
    """An education file made before it had its labelled image gets it from the original when
    first shown: that original altered, the image is left out and the failure recorded too."""
    file = RenditionFile.objects.filter(study=two_series_study, kind=Kind.EDUCATION).select_related(
        "instance__blob").first()
    RenditionFile.objects.filter(pk=file.pk).update(image_blob=None)
    blob_alter(file.instance.blob)
    status, html = _portal(patient)
    assert status == 200 and html.count('data-testid="education-image"') == 1
    event = AuditEvent.objects.get(action=A.BLOB_INTEGRITY_FAILED)
    assert event.target_id == str(file.instance.public_id) and event.details["read"] == "education_image"
