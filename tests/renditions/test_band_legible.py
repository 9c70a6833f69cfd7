"""The burned-in band of a small image is read whole. A 64 x 64 MR picture's education copy read
"...ICATION COPY - NOT FOR DIAGN...": the band's text was drawn at 4 px, wider than the picture,
and cut at both sides. Now an image narrower than ``BAND_MIN_WIDTH`` is enlarged first (its longer
side staying within the rendition's maximum), and a text that still does not fit on one line at
``BAND_MIN_FONT`` px is wrapped over several (a very narrow or short strip gets black borders).
The education DICOM holds the same (enlarged) picture as the labelled JPEG; the preview does the
same with its own band."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from apps.renditions import encoders


def _mr(columns: int, rows: int) -> bytes:
    """A synthetic (fictional, no patient) 16-bit MR image of ``columns`` x ``rows``."""
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = "MR"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    yy, xx = np.mgrid[0:rows, 0:columns]
    ds.PixelData = ((xx * 37 + yy * 53) % 4096).astype(np.uint16).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _assert_band_whole(jpeg: bytes, text: str, max_size: int) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    width, height = image.size
    assert max(width, height) <= max_size
    # measured with the font the band is drawn in: every line of the whole text fits the picture's
    # width (94% of it), at a legible size
    layout = encoders._band_layout(width, height, text)
    assert layout is not None and " ".join(layout.lines) == text
    assert layout.size >= encoders.BAND_MIN_FONT >= 8
    font = ImageFont.load_default(size=layout.size)
    assert all(font.getlength(line) <= width * 0.94 for line in layout.lines)
    # and in the pixels: light text on the dark band, clear of both edges (nothing cut off), and
    # letters as tall as a legible font's
    band = np.asarray(image.convert("L"), dtype=float)[height - layout.height:]
    assert band[:, :2].max() < 90 and band[:, -2:].max() < 90
    lit_rows = np.flatnonzero((band > 150).any(axis=1))
    assert lit_rows.size and lit_rows[-1] - lit_rows[0] + 1 >= 5
    return image


@pytest.mark.parametrize(("columns", "rows"), [(64, 64), (32, 256)])
def test_a_small_images_education_band_is_read_whole(columns, rows):
    export = encoders.education_export(_mr(columns, rows))
    image = _assert_band_whole(export.jpeg, encoders.EDUCATION_BAND_TEXT, encoders.EDUCATION_MAX)
    # enlarged (as far as the maximum allows), the DICOM holding the same picture
    assert image.size == (export.columns, export.rows)
    assert image.size[0] >= encoders.BAND_MIN_WIDTH or max(image.size) == encoders.EDUCATION_MAX
    ds = pydicom.dcmread(io.BytesIO(export.dicom))
    assert (ds.Columns, ds.Rows) == image.size
    assert f"enlarged to {ds.Columns} x {ds.Rows} px" in ds.DerivationDescription
    assert encoders.education_labelled_jpeg(_mr(columns, rows)) == export.jpeg


@pytest.mark.parametrize(("columns", "rows"), [(64, 64), (32, 256)])
def test_a_small_images_preview_band_is_read_whole(columns, rows):
    jpeg, width, height = encoders.preview_jpeg(_mr(columns, rows))
    image = _assert_band_whole(jpeg, encoders.BAND_TEXT, encoders.PREVIEW_MAX)
    assert image.size == (width, height)


@pytest.mark.parametrize(("columns", "rows"), [(2, 512), (512, 16)])
def test_a_strip_gets_borders_to_hold_its_band(columns, rows):
    export = encoders.education_export(_mr(columns, rows))
    _assert_band_whole(export.jpeg, encoders.EDUCATION_BAND_TEXT, encoders.EDUCATION_MAX)
    assert "bordered" in pydicom.dcmread(io.BytesIO(export.dicom)).DerivationDescription


def test_a_large_images_band_is_drawn_as_before():
    """One line, 7% of the height, the font fitted to 94% of the width: unchanged for 256 px and up."""
    export = encoders.education_export(_mr(512, 512))
    layout = encoders._band_layout(512, 512, encoders.EDUCATION_BAND_TEXT)
    assert layout == encoders._BandLayout((encoders.EDUCATION_BAND_TEXT,), 25, 36)
    assert (export.columns, export.rows) == (512, 512)
    assert "reduced to at most 512 px" in pydicom.dcmread(io.BytesIO(export.dicom)).DerivationDescription
    _assert_band_whole(export.jpeg, encoders.EDUCATION_BAND_TEXT, encoders.EDUCATION_MAX)
