"""The decoded-size budget: a frame (``LIGHTBOX_MAX_FRAME_BYTES``) or a whole object decoded at once
(``LIGHTBOX_MAX_OBJECT_BYTES``, the lossless copy) larger than its budget is refused from the
header, before any decoding. A few bytes of compressed data may declare 65535 x 65535 x 3 samples
of 16 bits: 25 GB the decoder would allocate in the web process that renders frames, or in a
worker. Test data: pydicom's test files, rewritten, and generated images."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from django.test import override_settings
from pydicom.pixels.decoders.base import Decoder
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from apps.deid.models import DeidExportFile, State
from apps.deid.services import deid_export_run, deid_export_start
from apps.imaging import pixels
from apps.renditions import encoders
from apps.renditions.models import Kind, Status
from tests.dicomfiles import pydicom_file, read_dataset
from tests.factories import CaseFactory
from tests.renditions.conftest import assert_frames_and_copies_refused, ingest_folder

pytestmark = pytest.mark.django_db

TOO_LARGE_FRAME = ("The image is too large to be shown here: one frame takes 25770 MB decoded, over this portal's "
                   "limit of 256 MB.")
TOO_LARGE_OBJECT = ("The original is too large for a lossless copy here: its pixels take 25770 MB decoded, over "
                    "this portal's limit of 1024 MB.")


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every call of pydicom's decoders (``pixel_array``, ``Dataset.pixel_array``, ``decompress``
    all go through them), refused: a decode of the crafted file is what the budget prevents."""
    calls: list[str] = []

    def refuse(name):
        def call(self, *args, **kwargs):
            calls.append(name)
            raise MemoryError(f"{name} called")
        return call

    for name in ("as_array", "iter_array", "as_buffer", "iter_buffer"):
        monkeypatch.setattr(Decoder, name, refuse(name))
    return calls


def test_a_small_file_declaring_a_huge_image_is_refused_before_decoding(decodes, org_a, clinician_a, client_as,
                                                                         tmp_path):
    """pydicom's MR_small_jp2klossless.dcm (64 x 64, a few kB of JPEG 2000) with a header saying
    65535 x 65535 RGB of 16 bits: the viewer, the preview, the education copy and the lossless
    copy refuse it with the reason, and no decoder is ever called. Its de-identified export
    decodes nothing either (the profile cleans headers only)."""
    ds = read_dataset(pydicom_file("MR_small_jp2klossless.dcm"))
    ds.Rows = ds.Columns = 65535
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "huge.dcm")
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(tmp_path / "in", org_a, case=case)
    made = assert_frames_and_copies_refused(client_as(clinician_a), study, TOO_LARGE_FRAME)
    assert (made[Kind.LOSSLESS].status, made[Kind.LOSSLESS].reason) == (Status.UNAVAILABLE, TOO_LARGE_OBJECT)
    assert made[Kind.ORIGINAL].status == Status.READY  # the original is kept and may be downloaded
    export = deid_export_run(export_id=deid_export_start(study=study, by=clinician_a, pseudonym="BUDGET-1",
                                                         enqueue=False).pk)
    assert export.state == State.READY and DeidExportFile.objects.filter(export=export).count() == 1
    assert decodes == []


def test_a_large_frame_within_the_budget_is_shown(tmp_path):
    """A generated 4096 x 4096 RGB image of 16 bits a sample (101 MB decoded, as large as real
    frames come: a mammography or pathology frame) is decoded and shown with the default budget."""
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid() for _ in range(3))
    ds.PatientName, ds.PatientID, ds.Modality = "Synthetic^Large", "SYN-LARGE", "OT"
    ds.Rows = ds.Columns = 4096
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ramp = np.broadcast_to((np.arange(4096, dtype="<u2") * 16)[None, :, None], (4096, 4096, 3))
    ds.PixelData = np.ascontiguousarray(ramp).tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(tmp_path / "large.dcm", enforce_file_format=True)
    del ds
    assert pixels.decoded_bytes(read_dataset(tmp_path / "large.dcm")) == 4096 * 4096 * 3 * 2
    image = pixels.render_frame(tmp_path / "large.dcm", max_size=512)
    shown = np.asarray(image)
    assert image.mode == "RGB" and shown.shape == (512, 512, 3)
    assert shown[0, 0, 0] == 0 and shown[0, -1, 0] > 250  # the ramp, dark to bright


def test_the_budgets_are_the_settings(tmp_path):
    """pydicom's emri_small_jpeg_2k_lossless.dcm: 10 frames of 64 x 64 x 16 bits, 8192 bytes a
    frame, 81920 the object. Each budget is the most allowed: at it the frame is shown and the
    lossless copy made, a byte below it they are refused."""
    path = pydicom_file("emri_small_jpeg_2k_lossless.dcm")
    with open(path, "rb") as fh:
        data = fh.read()
    with override_settings(LIGHTBOX_MAX_FRAME_BYTES=8192, LIGHTBOX_MAX_OBJECT_BYTES=81920):
        assert pixels.render_frame(path, 9).size == (64, 64)
        assert encoders.lossless_encode(data, "jpeg-ls")
    with override_settings(LIGHTBOX_MAX_FRAME_BYTES=8191), pytest.raises(pixels.UndecodableFrame) as refused:
        pixels.render_frame(path, 9)
    assert str(refused.value.reason).startswith("The image is too large to be shown here")
    with override_settings(LIGHTBOX_MAX_OBJECT_BYTES=81919), pytest.raises(encoders.NotEncodable) as refused:
        encoders.lossless_encode(data, "jpeg-ls")
    assert str(refused.value.reason).startswith("The original is too large for a lossless copy here")
    # the viewer decodes one frame at a time: the object's budget does not limit it
    with override_settings(LIGHTBOX_MAX_OBJECT_BYTES=8192):
        assert pixels.render_frame(path, 0).size == (64, 64)
