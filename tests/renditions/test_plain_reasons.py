"""Why a rendition was not made, in words a reader can act on and translate: never a Python
exception's type ("(ValueError)", logged at info for a developer instead), never a transfer
syntax's UID (named: "JPEG 2000 Image Compression"). Pixel data shorter than its header says is
named as such. A rendition that is not available shows no size ("—", not "0 bytes")."""

from __future__ import annotations

import io
import logging
import re

import pydicom
import pytest
from django.urls import reverse
from django.utils import translation

from apps.imaging import pixels
from apps.imaging.models import Instance
from apps.renditions import encoders
from apps.renditions.models import Kind, Rendition, RenditionFile, Status
from apps.renditions.services import study_renditions_make
from bench.frames_synthetic import ct_phantom_slice
from tests.dicomfiles import pydicom_file
from tests.factories import CaseFactory
from tests.renditions.conftest import ingest_folder

pytestmark = pytest.mark.django_db

SHORT = "The image data in this file is shorter than its header says: it cannot be shown."
TYPE_NAME = re.compile(r"\((?:[A-Z][A-Za-z]*(?:Error|Exception)|error)\)")


def _bytes(ds) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _short_ct() -> bytes:
    ds = ct_phantom_slice(0, rows=32, columns=32)
    ds.Rows = 48  # 48 x 32 x 2 bytes asked for, 32 x 32 x 2 held
    return _bytes(ds)


@pytest.fixture
def short_study(org_a, clinician_a, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "short.dcm").write_bytes(_short_ct())
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(tmp_path / "in", org_a, case=case)
    study_renditions_make(study_id=study.pk)
    return study


def test_short_pixel_data_is_named_not_a_python_type(short_study, client_as, clinician_a, caplog):
    for kind in (Kind.LOSSLESS, Kind.PREVIEW, Kind.EDUCATION):
        row = RenditionFile.objects.get(study=short_study, kind=kind)
        assert row.status == Status.UNAVAILABLE and row.reason == SHORT, kind
    lossless = Rendition.objects.get(study=short_study, kind=Kind.LOSSLESS)
    assert lossless.reason == SHORT and lossless.bytes == 0
    for language in ("en", "es"):
        with translation.override(language):
            page = client_as(clinician_a).get(short_study.get_absolute_url(), HTTP_ACCEPT_LANGUAGE=language)
        text = page.content.decode()
        assert not TYPE_NAME.search(text), language
        assert "0 bytes" not in text and "0\xa0bytes" not in text


def test_a_rendition_not_available_shows_no_size(short_study, client_as, clinician_a):
    html = client_as(clinician_a).get(short_study.get_absolute_url()).content.decode()
    rows = dict(re.findall(r'data-testid="rendition-(\w+)">(.*?)</tr>', html, re.S))
    for kind in ("lossless", "preview", "education"):
        size = re.search(r'data-testid="rendition-size">(.*?)</td>', rows[kind], re.S).group(1)
        assert size == "—", (kind, size)
    original = re.search(r'data-testid="rendition-size">(.*?)</td>', rows["original"], re.S).group(1)
    assert original != "—" and "KB" in original  # the original is there: its size is shown


def test_the_frame_says_why_in_words(short_study, client_as, clinician_a):
    inst = Instance.objects.get(study=short_study)
    response = client_as(clinician_a).get(reverse("viewer:frame", kwargs={"instance_id": inst.public_id}),
                                          {"quality": "diagnostic"})
    assert response["X-Lightbox-Frame"] == "undecodable"
    assert response.json()["reason"] == SHORT


def test_a_missing_decoder_names_the_compression_not_its_uid(monkeypatch):
    path = pydicom_file("JPEG2000.dcm")
    assert str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.91"

    def no_plugin(*args, **kwargs):
        raise RuntimeError("Unable to decompress 'JPEG 2000' pixel data because all plugins are missing dependencies")

    # pydicom's decoder, however the frame is handed to it (the file, or the data set's value)
    monkeypatch.setattr(pydicom.pixels.decoders.base.Decoder, "as_array", no_plugin)
    with pytest.raises(pixels.UndecodableFrame) as raised:
        pixels.load_frame(path)
    assert raised.value.reason == "This file's compression (JPEG 2000 Image Compression) cannot be decoded here."
    assert "1.2.840" not in raised.value.reason
    assert pixels.transfer_syntax_name("1.2.3.4") == "1.2.3.4"  # a private one: its UID, nothing else to say


def test_an_encoder_failure_is_logged_by_type_and_told_in_words(monkeypatch, caplog):
    def fails(self, *args, **kwargs):
        raise ValueError("a message that might quote the file")

    monkeypatch.setattr(pydicom.Dataset, "compress", fails)
    caplog.set_level(logging.INFO, logger="apps.renditions.encoders")
    with pytest.raises(encoders.NotEncodable) as raised:
        encoders.lossless_encode(_bytes(ct_phantom_slice(0, rows=32, columns=32)), "rle")
    assert raised.value.reason == "RLE Lossless cannot encode this image."
    assert "ValueError" in caplog.text and "quote the file" not in caplog.text


def test_an_unexpected_error_is_not_named_by_its_type(org_a, clinician_a, tmp_path, monkeypatch, caplog):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ct.dcm").write_bytes(_bytes(ct_phantom_slice(0, rows=32, columns=32)))
    [study] = ingest_folder(tmp_path / "in", org_a, case=CaseFactory(organization=org_a))

    def broken(*args, **kwargs):
        raise KeyError("x")

    monkeypatch.setattr(encoders, "preview_jpeg", broken)
    study_renditions_make(study_id=study.pk)
    row = RenditionFile.objects.get(study=study, kind=Kind.PREVIEW)
    assert row.status == Status.UNAVAILABLE
    assert "KeyError" not in row.reason and not TYPE_NAME.search(row.reason)
    assert "unexpected error" in row.reason.lower()
    assert "KeyError" in caplog.text


@pytest.mark.parametrize("tsuid", ["1.3.46.670589.33.1.4.1", "1.2.3.4.5"])
def test_a_private_transfer_syntax_is_refused_with_a_reason_not_a_500(org_a, clinician_a, client_as, tmp_path,
                                                                       tsuid):
    """A transfer syntax pydicom does not know (a vendor's private one) cannot be decoded: the
    viewer says so (200, undecodable, a reason) and the lossless copy is refused with one; asking
    whether its pixel data is short (pydicom raises for is_compressed of such a UID) made both a 500
    and an 'unexpected error'."""
    ds = ct_phantom_slice(0, rows=32, columns=32)
    ds.file_meta.TransferSyntaxUID = tsuid
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    data = out.getvalue()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "private.dcm").write_bytes(data)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(tmp_path / "in", org_a, case=case)
    inst = Instance.objects.get(study=study)
    response = client_as(clinician_a).get(reverse("viewer:frame", kwargs={"instance_id": inst.public_id}),
                                          {"quality": "diagnostic"})
    assert response.status_code == 200 and response["X-Lightbox-Frame"] == "undecodable"
    assert response.json()["reason"] and not TYPE_NAME.search(response.json()["reason"])
    with pytest.raises(encoders.NotEncodable) as refused:
        encoders.lossless_encode(data, "rle")
    assert refused.value.reason and not TYPE_NAME.search(refused.value.reason)
