"""The patient's education copy, downloaded from the portal ("Download your copy (zip)"), holds
pictures a phone or a home computer opens: per key image, a low-resolution JPEG with the "EDUCATION
COPY - NOT FOR DIAGNOSIS" band burned in, and a README.txt in the patient's language saying what
they are. It held the education DICOM files, which they cannot open (and whose header names the
patient); the diagnostic, preview and original packages are as they were."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.imaging.blobs import open_blob
from apps.imaging.models import Blob, Instance
from apps.imaging.services import study_delete
from apps.renditions import encoders
from apps.renditions.models import Kind, RenditionFile, Status
from apps.renditions.services import education_image
from bench.ingest.synthetic import FICTIONAL_PATIENT

pytestmark = pytest.mark.django_db

#: what the synthetic CT's header says of its (fictional) patient: none of it may be in the copy
_IDENTIFIERS = (FICTIONAL_PATIENT, "Synthetic", "Testpatient", "SYN-0001", "19700101", "SYN-ACC-1")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _download(client: Client, study):
    url = reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + "?rendition=education"
    response = client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    return response, body, zipfile.ZipFile(io.BytesIO(body))


def _education_files(study) -> list[RenditionFile]:
    files = list(RenditionFile.objects.filter(study=study, kind=Kind.EDUCATION, status=Status.READY)
                 .select_related("image_blob").order_by("pk"))
    assert files
    return files


def _band_height(image: Image.Image) -> int:
    return max(8, round(image.size[1] * 0.07))  # encoders._band's


def test_the_copy_holds_a_labelled_low_resolution_jpeg_per_image_and_no_dicom(edu_study, edu_share, patient):
    _response, _body, archive = _download(_client(patient), edu_study)
    names = archive.namelist()
    root = names[0].split("/")[0]
    assert root.endswith("_Education")
    images = [n for n in names if n.endswith(".jpg")]
    assert sorted(names) == sorted([f"{root}/MANIFEST.txt", f"{root}/README.txt", *images])
    assert not any(n.lower().endswith(".dcm") for n in names)
    files = _education_files(edu_study)
    assert len(images) == len(files) and all("/S001_CT/ED" in n for n in images)
    manifest = archive.read(f"{root}/MANIFEST.txt").decode()
    for name, file in zip(sorted(images), files, strict=True):
        data = archive.read(name)
        image = Image.open(io.BytesIO(data))
        image.load()  # a browser's decoder opens it (Pillow decodes it whole)
        assert image.format == "JPEG" and image.mode == "L"
        assert image.size == (file.columns, file.rows) and max(image.size) <= encoders.EDUCATION_MAX
        assert f"{hashlib.sha256(data).hexdigest()}  {len(data)}  Patient education - low resolution  {name}" \
            in manifest
        assert data == education_image(file=file)  # the very picture the portal shows
        # the education file's own picture (its DICOM's pixels, decoded), with the band burned in at its bottom
        with open_blob(file.blob) as fh:
            shown = pydicom.dcmread(io.BytesIO(fh.read())).pixel_array.astype(float)
        pixels = np.asarray(image, dtype=float)
        band = _band_height(image)
        assert np.abs(pixels[:-band - 8] - shown[:-band - 8]).mean() < 8  # the same picture above it
        assert pixels[-band:].mean() < shown[-band:].mean() / 2  # a dark band where the picture was
        assert pixels[-band:].max() > 100  # with light text on it


def test_the_copy_names_no_patient(edu_study, edu_share, patient):
    """No identifier of the patient anywhere in the zip (the DICOM files it held carried the
    patient's name, ID and birth date), and nothing but pixels in its pictures: no EXIF, comment
    or profile. The package's name keeps the study's date, modality and region, as before."""
    _response, body, archive = _download(_client(patient), edu_study)
    for value in _IDENTIFIERS:
        assert value.encode() not in body
    for name in archive.namelist():
        assert all(value.encode() not in archive.read(name) for value in _IDENTIFIERS)
        if name.endswith(".jpg"):
            image = Image.open(io.BytesIO(archive.read(name)))
            assert not image.getexif() and not {"exif", "comment", "icc_profile", "xmp"} & set(image.info)
    assert archive.namelist()[0].startswith("2026-01-01_CT-Chest_V1")


def test_the_readme_says_what_the_pictures_are_in_the_patients_language(edu_study, edu_share, patient):
    client = _client(patient)
    _response, _body, archive = _download(client, edu_study)
    root = archive.namelist()[0].split("/")[0]
    readme = archive.read(f"{root}/README.txt").decode("utf-8")
    assert "Patient education - low resolution, not for diagnosis" in readme
    assert encoders.EDUCATION_BAND_TEXT in readme and "JPEG" in readme
    images = [n.removeprefix(f"{root}/") for n in archive.namelist() if n.endswith(".jpg")]
    assert images and all(f"  {path}\n" in readme for path in images)

    patient.language = "es"
    patient.save(update_fields=["language"])
    _response, _body, archive = _download(client, edu_study)
    readme = archive.read(f"{root}/README.txt").decode("utf-8")
    assert "Educación del paciente - baja resolución, no apto para diagnóstico" in readme
    assert all(f"  {path}\n" in readme for path in images)


def test_the_same_asker_gets_the_same_bytes_and_other_packages_hold_no_readme(edu_study, edu_share, patient,
                                                                              sharer):
    """A resume must match: the same ETag and bytes on every request of the patient's. The
    clinician's education zip is the same pictures; their original and preview zips are as before."""
    client = _client(patient)
    first, body, _archive = _download(client, edu_study)
    again, body_again, _archive = _download(client, edu_study)
    assert first["ETag"] == again["ETag"] and body == body_again
    staff = _client(sharer)
    _r, _b, archive = _download(staff, edu_study)
    assert sum(n.endswith(".jpg") for n in archive.namelist()) == len(_education_files(edu_study))
    for kind, ext in (("original", ".dcm"), ("preview", ".jpg")):
        url = reverse("renditions:study_download", kwargs={"study_id": edu_study.public_id}) + f"?rendition={kind}"
        names = zipfile.ZipFile(io.BytesIO(b"".join(staff.get(url).streaming_content))).namelist()
        assert not any(n.endswith("README.txt") for n in names)
        assert [n for n in names if not n.endswith("MANIFEST.txt")] and all(
            n.endswith(ext) for n in names if not n.endswith("MANIFEST.txt"))


def test_an_education_file_made_before_the_copy_held_pictures_gets_its_picture(edu_study, edu_share, patient):
    """An education file made before (a DICOM file only) gets its labelled picture when a copy is
    first asked for, made from its original as the file was; one that cannot be made is left out,
    and the README and the manifest say so."""
    file = _education_files(edu_study)[0]
    RenditionFile.objects.filter(pk=file.pk).update(image_blob=None, image_sha256="", image_crc32=None, image_bytes=0)
    _response, _body, archive = _download(_client(patient), edu_study)
    file.refresh_from_db()
    assert file.image_blob_id and file.image_bytes
    data = next(archive.read(n) for n in archive.namelist() if n.endswith(".jpg"))
    with open_blob(file.image_blob) as fh:
        assert fh.read() == data and hashlib.sha256(data).hexdigest() == file.image_sha256
    assert Image.open(io.BytesIO(data)).format == "JPEG"

    # its original can no longer be decoded (here: its blob is a JPEG): the picture is left out
    RenditionFile.objects.filter(pk=file.pk).update(image_blob=None, image_sha256="", image_crc32=None, image_bytes=0)
    Instance.objects.filter(pk=file.instance_id).update(blob=file.image_blob)
    _response, _body, archive = _download(_client(patient), edu_study)
    root = archive.namelist()[0].split("/")[0]
    assert not any(n.endswith(".jpg") for n in archive.namelist())
    assert "The image could not be made." in archive.read(f"{root}/MANIFEST.txt").decode()
    assert "1 picture could not be included; MANIFEST.txt says why." in archive.read(f"{root}/README.txt").decode()


def test_deleting_the_study_removes_its_education_pictures(edu_study, admin_a):
    pictures = [f.image_blob for f in _education_files(edu_study)]
    assert all(default_storage.exists(b.storage_name) for b in pictures)
    study_delete(study=edu_study, by=admin_a)
    assert not Blob.objects.filter(pk__in=[b.pk for b in pictures]).exists()
    assert not any(default_storage.exists(b.storage_name) for b in pictures)
