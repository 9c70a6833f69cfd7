"""seed_demo: the demo shows one finished de-identified export, with its report and download."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from django.urls import reverse

from apps.accounts.models import User
from apps.core.demo import seed
from apps.deid.models import DeidExport, State

pytestmark = pytest.mark.django_db


def test_demo_has_one_finished_export_and_its_pages_show_it(client_as):
    seed()
    seed()  # idempotent
    [export] = DeidExport.objects.filter(organization__slug="northwind")
    assert export.state == State.READY and export.files_exported >= 1
    radiologist = User.objects.get(email="radiologist@northwind.example")
    client = client_as(radiologist)
    assert b'data-testid="deid-exports"' in client.get(export.study.get_absolute_url()).content
    listing = client.get(reverse("deid:study_exports", kwargs={"study_id": export.study.public_id}))
    assert listing.content.count(b'data-testid="deid-export"') == 1
    page = client.get(export.get_absolute_url()).content
    assert b'data-testid="deid-download"' in page
    response = client.get(reverse("deid:export_download", kwargs={"deidexport_id": export.public_id}))
    data = b"".join(response.streaming_content)
    zf = zipfile.ZipFile(io.BytesIO(data))
    [dcm] = [n for n in zf.namelist() if n.endswith(".dcm")][:1]
    ds = pydicom.dcmread(io.BytesIO(zf.read(dcm)))
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientName == export.pseudonym
    assert export.study.patient_name and export.study.patient_name.encode() not in zf.read(dcm)
