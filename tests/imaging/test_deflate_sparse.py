"""A legitimate deflated file that inflates far more than a zip bomb's ratio (a segmentation mask,
an image mostly background: 4 MB of pixels in a file of about 10 KB) is read, ingested and shown:
a deflated data set is refused only past what a whole object may take
(LIGHTBOX_MAX_OBJECT_BYTES), whatever the file's size; memory stays bounded (the inflated copy
spills to a temporary file). The refusal past that limit: tests/imaging/test_header_memory.py."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from apps.imaging import dicom, pixels
from apps.imaging.models import FileOutcome, JobState
from apps.imaging.services import ingest_job_create, ingest_job_run
from bench.ingest.synthetic import ct_slice

FRAMES, SIDE = 8, 512


def _sparse_mask() -> bytes:
    """8 frames of 512 x 512 16-bit pixels, a 60 x 60 square of ones in each: deflated."""
    ds = ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=SIDE, columns=SIDE)
    mask = np.zeros((FRAMES, SIDE, SIDE), dtype=np.uint16)
    mask[:, 200:260, 200:260] = 1
    ds.NumberOfFrames = FRAMES
    ds.PixelData = mask.tobytes()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_sparse_deflated_file_is_read_whatever_it_inflates_to_for_its_size():
    data = _sparse_mask()
    assert len(data) < 64 * 1024 and len(data) * 100 < FRAMES * SIDE * SIDE * 2  # past the zip bomb ratio
    header = dicom.parse(io.BytesIO(data))
    assert (header.rows, header.columns, header.transfer_syntax_uid) == (SIDE, SIDE, dicom.DEFLATED)
    info = pixels.frame_info(io.BytesIO(data))  # the viewer reads it too
    assert (info.rows, info.columns) == (SIDE, SIDE)


@pytest.mark.django_db
def test_a_sparse_deflated_file_is_ingested(org_a, tmp_path):
    (tmp_path / "mask.dcm").write_bytes(_sparse_mask())
    job = ingest_job_run(job_id=ingest_job_create(organization=org_a, source_path=str(tmp_path), enqueue=False).pk)
    line = job.files.get()
    assert (job.state, line.outcome) == (JobState.DONE, FileOutcome.INGESTED), line.reason


def test_a_data_set_inflating_past_a_whole_objects_limit_is_refused(settings):
    settings.LIGHTBOX_MAX_OBJECT_BYTES = 2_000_000  # under the mask's 4 MB of pixels
    with pytest.raises(dicom.InflateLimit) as raised:
        dicom.parse(io.BytesIO(_sparse_mask()))
    assert raised.value.reason == ("refused: its deflated (compressed) data set inflates to more than 2 MB, the most "
                                   "accepted for one file (a decompression bomb?)")
