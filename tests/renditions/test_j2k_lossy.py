"""A JPEG 2000 file (lossy-or-lossless .91) that does not say Lossy Image Compression = 01 but whose
codestream used the 9-7 irreversible transform is lossy: the viewer labels that frame lossy, never
diagnostic, and no "lossless" copy is made of the object; 5-3 (reversible) frames keep the header's
word, as before."""

from __future__ import annotations

import io

import numpy as np
import openjpeg
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000, generate_uid

from apps.renditions import encoders
from apps.renditions.models import Kind, Label, RenditionFile, Status
from apps.renditions.services import study_renditions_make
from apps.viewer import services as frames
from tests.dicomfiles import pydicom_file, read_dataset
from tests.renditions.conftest import ingest_folder

DIAGNOSTIC = frames.FrameRequest(quality="diagnostic")


def _j2k_file(path, *, lossy_frames: tuple[bool, ...]) -> bytes:
    """CT_small's image as a .91 file of ``len(lossy_frames)`` frames, each coded irreversibly
    (9-7, a compression ratio) or reversibly (5-3) as told, with no Lossy Image Compression."""
    ds = read_dataset(pydicom_file("CT_small.dcm"))
    image = ds.pixel_array.astype(np.uint16) & 0x0FFF
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    codestreams = [openjpeg.encode(image, bits_stored=12, compression_ratios=[8] if lossy else None)
                   for lossy in lossy_frames]
    ds.PixelData = encapsulate(codestreams)
    ds["PixelData"].VR = "OB"
    ds.NumberOfFrames = len(lossy_frames)
    ds.file_meta.TransferSyntaxUID = JPEG2000
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword in ("LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def test_the_irreversible_frame_is_labelled_lossy_and_the_reversible_one_keeps_its_label(tmp_path):
    data = _j2k_file(tmp_path / "mixed.dcm", lossy_frames=(False, True))
    first = frames.frame_render(src=tmp_path / "mixed.dcm", request=DIAGNOSTIC)
    second = frames.frame_render(src=tmp_path / "mixed.dcm", request=frames.FrameRequest(quality="diagnostic", frame=1))
    assert first.label == frames.LABEL_DIAGNOSTIC
    assert second.label == frames.LABEL_LOSSY
    assert Image.open(io.BytesIO(second.body)).size == (128, 128)  # still shown, whole
    assert encoders.source_facts(data).lossy is True  # any frame lossy: the object is
    with pytest.raises(encoders.NotEncodable, match="already lossy"):
        encoders.lossless_encode(data, "rle")


def test_an_all_reversible_file_stays_diagnostic_with_its_lossless_copy(tmp_path):
    data = _j2k_file(tmp_path / "reversible.dcm", lossy_frames=(False,))
    assert frames.frame_render(src=tmp_path / "reversible.dcm", request=DIAGNOSTIC).label == frames.LABEL_DIAGNOSTIC
    assert encoders.source_facts(data).lossy is False
    assert pydicom.dcmread(io.BytesIO(encoders.lossless_encode(data, "rle"))).file_meta.TransferSyntaxUID.is_compressed


def test_pydicoms_lossy_j2k_without_its_flag_is_still_lossy(tmp_path):
    ds = read_dataset(pydicom_file("JPEG2000.dcm"))
    del ds.LossyImageCompression
    ds.save_as(tmp_path / "unflagged.dcm")
    assert frames.frame_render(src=tmp_path / "unflagged.dcm", request=DIAGNOSTIC).label == frames.LABEL_LOSSY
    assert encoders.source_facts((tmp_path / "unflagged.dcm").read_bytes()).lossy is True


@pytest.mark.django_db
def test_in_a_study_the_unflagged_irreversible_original_is_never_diagnostic(org_a, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _j2k_file(folder / "lossy.dcm", lossy_frames=(True,))
    [study] = ingest_folder(folder, org_a)
    study_renditions_make(study_id=study.pk)
    files = {f.kind: f for f in RenditionFile.objects.filter(instance__study=study)}
    assert files[Kind.ORIGINAL].status == Status.READY and files[Kind.ORIGINAL].label == Label.LOSSY_SOURCE
    assert files[Kind.LOSSLESS].status == Status.UNAVAILABLE and "lossy" in files[Kind.LOSSLESS].reason
