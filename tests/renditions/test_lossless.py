"""Must show 1: for every pydicom test file that can be encoded, the lossless rendition decodes
to exactly the original pixels; a file that cannot be encoded keeps its original and says why.

The encoders run once per file and codec (module-scoped); the checks here decode both sides
independently of the encoder's own verification.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT

from apps.renditions import encoders
from apps.renditions.models import Kind, Label, RenditionFile, Status
from apps.renditions.services import study_renditions_make
from tests.renditions.conftest import copy_files, ingest_folder

FILES = sorted((Path(DATA_ROOT) / "test_files").rglob("*.dcm"))


def _pixels(data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True).pixel_array


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], bytes | str]:
    results: dict[tuple[str, str], bytes | str] = {}
    for path in FILES:
        data = path.read_bytes()
        for codec in encoders.LOSSLESS_CODECS:
            try:
                results[(path.name, codec)] = encoders.lossless_encode(data, codec)
            except encoders.NotEncodable as exc:
                results[(path.name, codec)] = exc.reason
    return results


def test_the_test_files_are_there_and_most_encode(outcomes):
    assert len(FILES) >= 50
    encoded = [k for k, v in outcomes.items() if isinstance(v, bytes)]
    assert len(encoded) >= 50, "too few files encoded: the check below would prove little"
    assert {codec for _, codec in encoded} == set(encoders.LOSSLESS_CODECS)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_lossless_copy_decodes_to_the_original_pixels_or_says_why(path, outcomes):
    data = path.read_bytes()
    for codec, target in encoders.LOSSLESS_CODECS.items():
        result = outcomes[(path.name, codec)]
        if isinstance(result, str):
            assert result.strip(), f"{codec}: refused without a reason"
            continue
        copy = pydicom.dcmread(io.BytesIO(result))
        assert copy.file_meta.TransferSyntaxUID == target
        assert copy.SOPInstanceUID == pydicom.dcmread(io.BytesIO(data), force=True).SOPInstanceUID
        original, decoded = _pixels(data), _pixels(result)
        assert decoded.dtype == original.dtype and decoded.shape == original.shape, codec
        assert np.array_equal(decoded, original), f"{codec}: the copy's pixels differ"


def test_a_changed_pixel_is_caught(monkeypatch):
    """The verification itself can fail: an encoder that alters one pixel is refused."""
    path = Path(DATA_ROOT) / "test_files" / "CT_small.dcm"
    real = pydicom.dataset.Dataset.compress

    def altering(self, uid, arr=None, **kwargs):
        arr = arr.copy()
        arr[0, 0] += 1
        return real(self, uid, arr, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "compress", altering)
    with pytest.raises(encoders.NotEncodable, match="does not decode to the original"):
        encoders.lossless_encode(path.read_bytes(), "rle")


@pytest.mark.django_db
def test_unencodable_file_keeps_its_original_and_says_why(org_a, tmp_path):
    """In a study: a lossy source (JPEG baseline) gets no lossless copy, keeps its original, is
    never labelled diagnostic; an encodable file gets a verified lossless copy."""
    names = ["SC_jpeg_no_color_transform.dcm", "CT_small.dcm"]
    folder = copy_files([Path(DATA_ROOT) / "test_files" / n for n in names], tmp_path / "in")
    studies = ingest_folder(folder, org_a)
    for study in studies:
        study_renditions_make(study_id=study.pk)
    files = {(f.instance.sop_instance_uid, f.kind): f for f in RenditionFile.objects.select_related("instance")}
    jpeg_uid = pydicom.dcmread(folder / names[0], stop_before_pixels=True).SOPInstanceUID
    ct_uid = pydicom.dcmread(folder / names[1], stop_before_pixels=True).SOPInstanceUID

    lossless = files[(jpeg_uid, Kind.LOSSLESS)]
    assert lossless.status == Status.UNAVAILABLE and "lossy" in lossless.reason
    original = files[(jpeg_uid, Kind.ORIGINAL)]
    assert original.status == Status.READY and original.label == Label.LOSSY_SOURCE
    assert original.blob_id == original.instance.blob_id
    for kind in Kind:
        f = files.get((jpeg_uid, kind))
        assert f is None or f.label not in (Label.DIAGNOSTIC_ORIGINAL, Label.DIAGNOSTIC_LOSSLESS)

    ct = files[(ct_uid, Kind.LOSSLESS)]
    assert ct.status == Status.READY and ct.label == Label.DIAGNOSTIC_LOSSLESS
    assert ct.codec == encoders.LOSSLESS_CODECS["jpeg-ls"] and 0 < ct.ratio < 1
    from apps.imaging.blobs import open_blob

    with open_blob(ct.blob) as fh:
        assert np.array_equal(_pixels(fh.read()), _pixels((folder / names[1]).read_bytes()))


@pytest.mark.django_db
def test_why_a_rendition_is_missing_is_shown_in_the_readers_language(org_a, clinician_a, client_as, tmp_path):
    """The reason is made in a task (stored in English) and shown in the reader's language."""
    from django.urls import reverse
    from django.utils import translation

    from apps.renditions.models import Rendition

    folder = copy_files([Path(DATA_ROOT) / "test_files" / "SC_jpeg_no_color_transform.dcm"], tmp_path / "in")
    (study,) = ingest_folder(folder, org_a)
    study_renditions_make(study_id=study.pk)
    lossless = Rendition.objects.get(study=study, kind=Kind.LOSSLESS)
    english = "The original is already lossy-compressed: a lossless copy would not be diagnostic-grade."
    assert lossless.reason == english
    spanish = "El original ya está comprimido con pérdida: una copia sin pérdida no sería apta para diagnóstico."
    with translation.override("es"):
        assert lossless.reason_shown == spanish
    # the study's page says in one statement there is no lossless copy
    # (tests/renditions/test_no_lossless_copy_row.py); the page of its refused download gives the reason
    url = reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + "?rendition=lossless"
    page = client_as(clinician_a).get(url, HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert spanish in page and english not in page
