"""The education copy's images on the patient portal: a patient on a phone or a tablet sees them
without a DICOM viewer. Each is the labelled picture the patient's zip holds (the education file's
pixels with the "not for diagnosis" band burned in; never the original's pixels),
sent inline with the never-cached page, shown only where the policy lets the patient take the copy
(counting nothing), and recorded once per study and browser session."""

from __future__ import annotations

import base64
import io
import re
from datetime import timedelta

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import generate_frames

from apps.audit.models import AuditEvent
from apps.imaging.blobs import open_blob
from apps.renditions.models import Kind, RenditionFile
from apps.sharing import services
from apps.sharing.models import Grant

pytestmark = pytest.mark.django_db

_IMG = re.compile(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)" data-testid="education-image"')


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _education_files(study) -> list[RenditionFile]:
    return list(RenditionFile.objects.filter(study=study, kind=Kind.EDUCATION).order_by("pk"))


def _portal(client: Client) -> tuple[str, list[bytes]]:
    response = client.get(reverse("education:portal"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    html = response.content.decode()
    return html, [base64.b64decode(m) for m in _IMG.findall(html)]


def test_the_portal_shows_each_image_of_the_copy_and_each_is_the_copys_jpeg(edu_study, edu_share, patient):
    files = _education_files(edu_study)
    assert files
    html, shown = _portal(_client(patient))
    assert len(shown) == len(files)
    assert "from your scan, low resolution" in html and "Not for diagnosis" in html
    for file, jpeg in zip(files, shown, strict=True):
        with open_blob(file.image_blob) as fh:  # the labelled picture, the one the patient's zip holds
            assert jpeg == fh.read()
        image = Image.open(io.BytesIO(jpeg))
        assert image.format == "JPEG" and image.size == (file.columns, file.rows)
        assert f'width="{file.columns}" height="{file.rows}"' in html
        with open_blob(file.instance.blob) as fh:  # the original's pixels are never what is shown
            assert jpeg not in fh.read()


def test_each_image_shown_bears_the_not_for_diagnosis_band(edu_study, edu_share, patient):
    """The portal showed the JPEG inside the education DICOM, made before the band is burned in:
    the patient saw the picture with no "NOT FOR DIAGNOSIS" on it (the zip's picture has it). The
    same check as the zip's (tests/education/test_download_images.py)."""
    _html, shown = _portal(_client(patient))
    files = _education_files(edu_study)
    assert len(shown) == len(files)
    for file, jpeg in zip(files, shown, strict=True):
        with open_blob(file.blob) as fh:  # the education file's own picture: no band
            stored = dcmread(io.BytesIO(fh.read()))
        unlabelled = np.asarray(Image.open(io.BytesIO(next(generate_frames(stored.PixelData, number_of_frames=1)))),
                                dtype=float)
        image = Image.open(io.BytesIO(jpeg))
        pixels = np.asarray(image, dtype=float)
        assert pixels.shape == unlabelled.shape
        band = max(8, round(image.size[1] * 0.07))  # encoders._band's
        assert np.abs(pixels[:-band - 8] - unlabelled[:-band - 8]).mean() < 8  # the same picture above it
        assert pixels[-band:].mean() < unlabelled[-band:].mean() / 2  # a dark band where the picture was
        assert pixels[-band:].max() > 100  # with light text on it


def test_an_education_file_made_before_it_had_a_picture_gets_one_when_shown(edu_study, edu_share, patient):
    file = _education_files(edu_study)[0]
    RenditionFile.objects.filter(pk=file.pk).update(image_blob=None, image_sha256="", image_crc32=None, image_bytes=0)
    _html, shown = _portal(_client(patient))
    file.refresh_from_db()
    assert file.image_blob_id and len(shown) == len(_education_files(edu_study))
    with open_blob(file.image_blob) as fh:
        assert shown[0] == fh.read()


def test_showing_the_images_counts_no_download_and_is_recorded_once_per_study_and_session(
        edu_study, edu_share, patient):
    grant, _link, _raw = edu_share
    client = _client(patient)
    for _ in range(3):
        assert _portal(client)[1]
    grant.refresh_from_db()
    assert grant.download_count == 0
    viewed = AuditEvent.objects.filter(action="education.viewed", target_id=str(edu_study.public_id))
    assert viewed.count() == 1 and viewed.get().actor_id == patient.pk
    assert viewed.get().details["images"] == len(_education_files(edu_study))
    _portal(_client(patient))  # another browser session
    assert viewed.count() == 2


@pytest.mark.parametrize("how", ["revoked", "expired", "limit", "second_factor", "scope"])
def test_no_image_where_the_copy_may_not_be_taken(edu_study, edu_share, patient, sharer, how):
    """The same decision as the download: a share over its download limit shows no images
    either, nor one whose second factor this session has not passed."""
    grant, _link, _raw = edu_share
    if how == "revoked":
        services.grants_revoke(grants=[grant], by=sharer, reason="test")
    else:
        change = {"expired": {"expires_at": timezone.now() - timedelta(seconds=1)},
                  "limit": {"download_count": 2}, "second_factor": {"mfa_required": True},
                  "scope": {"renditions": ["preview"]}}[how]
        Grant.objects.filter(pk=grant.pk).update(**change)
    _html, shown = _portal(_client(patient))
    assert shown == []
    assert not AuditEvent.objects.filter(action="education.viewed").exists()


def test_an_image_that_cannot_be_read_is_left_out_and_the_page_shown(edu_study, edu_share, patient, caplog):
    file = _education_files(edu_study)[0]
    RenditionFile.objects.filter(pk=file.pk).update(image_blob=file.instance.blob)  # not an education image
    html, shown = _portal(_client(patient))
    assert shown == [] and 'data-testid="education-download"' in html
    assert f"education file {file.public_id}: not shown (NotEncodable)" in caplog.text
    assert not AuditEvent.objects.filter(action="education.viewed").exists()


def test_the_portal_in_spanish_describes_the_images(edu_study, edu_share, patient):
    patient.language = "es"
    patient.save(update_fields=["language"])
    html, shown = _portal(_client(patient))
    assert shown and "de su estudio, baja resolución" in html and "No apto para diagnóstico" in html
