"""A "lossless" copy keeps every bit the original stores. pydicom's ``pixel_array`` clears the bits
above Bits Stored (or repeats the sign in them), and the copy was encoded from, and checked
against, that array: an original whose high bits held data (an overlay drawn in the pixel data,
which old files do: Overlay Bits Position 15 of 12-bit samples) was accepted by JPEG-LS, JPEG 2000
and RLE, and the copy's samples had lost those bits. Such an original gets no compressed copy (the
lossless package holds the original in its place, saying so); samples whose high bits are only
padding (zeros, or a signed sample's sign repeated) are compressed as before."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from apps.renditions import encoders
from apps.renditions.models import Kind, RenditionFile, Status
from apps.renditions.services import study_renditions_make
from tests.renditions.conftest import ingest_folder


def _ct(samples: np.ndarray, *, signed: bool) -> bytes:
    """CT_small with 12 bits stored in 16 and these samples, as stored."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = samples.astype("<u2").tobytes()
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _with_overlay_in_bit_15() -> tuple[bytes, np.ndarray]:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    samples = np.frombuffer(ds.PixelData, dtype="<u2") & 0x0FFF
    samples[:500] |= 0x8000  # a graphic overlay in bit 15
    data = _ct(samples, signed=False)
    ds = pydicom.dcmread(io.BytesIO(data))
    for tag, vr, value in ((0x60000010, "US", ds.Rows), (0x60000011, "US", ds.Columns), (0x60000100, "US", 1),
                           (0x60000102, "US", 15)):  # the overlay's header: bit 15 of the pixel data
        ds.add_new(tag, vr, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), samples


def _stored(data: bytes) -> np.ndarray:
    """The samples as stored, every bit (decompressed: the bytes pydicom writes back)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress(generate_instance_uid=False, correct_unused_bits=False)
    return np.frombuffer(ds.PixelData, dtype="<u2")


@pytest.mark.parametrize("codec", list(encoders.LOSSLESS_CODECS))
def test_an_original_with_data_above_bits_stored_gets_no_compressed_copy(codec):
    data, _samples = _with_overlay_in_bit_15()
    with pytest.raises(encoders.NotEncodable, match="bits above Bits Stored"):
        encoders.lossless_encode(data, codec)


@pytest.mark.parametrize("codec", ["jpeg-ls", "jpeg2000"])
def test_a_compressed_original_with_data_above_bits_stored_gets_none_either(codec):
    """An RLE original keeps its samples' every byte: decompressing it cleared the high bits before
    the copy was checked against it."""
    data, samples = _with_overlay_in_bit_15()
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.BitsStored, ds.HighBit = 16, 15  # RLE encodes the samples' 16 bits as they are
    ds.compress(pydicom.uid.RLELossless, generate_instance_uid=False)
    ds.BitsStored, ds.HighBit = 12, 11
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert np.array_equal(_stored(out.getvalue()), samples)
    with pytest.raises(encoders.NotEncodable, match="bits above Bits Stored"):
        encoders.lossless_encode(out.getvalue(), codec)


@pytest.mark.parametrize("codec", list(encoders.LOSSLESS_CODECS))
def test_padding_above_bits_stored_is_no_data(codec):
    """Zeros above the 12 bits of unsigned samples; of signed ones, zeros or the sign repeated
    (both are found): the copy decodes to the same values, as before."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    values = np.clip(np.frombuffer(ds.PixelData, dtype="<i2").astype(np.int32) - 1024, -2048, 2047)
    for signed, samples in ((False, values + 2048),
                            (True, values & 0xFFFF),     # negative samples with the sign repeated
                            (True, values & 0x0FFF)):    # with zeros above bit 11
        data = _ct(samples, signed=signed)
        copy = encoders.lossless_encode(data, codec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = pydicom.dcmread(io.BytesIO(data)).pixel_array
            assert np.array_equal(pydicom.dcmread(io.BytesIO(copy)).pixel_array, original), (codec, signed)


@pytest.mark.django_db
def test_in_a_study_the_lossless_package_holds_the_original_in_its_place(org_a, tmp_path):
    from apps.renditions.packages import study_package

    data, samples = _with_overlay_in_bit_15()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(data)
    [study] = ingest_folder(folder, org_a)
    study_renditions_make(study_id=study.pk)
    lossless = RenditionFile.objects.get(study=study, kind=Kind.LOSSLESS)
    assert lossless.status == Status.UNAVAILABLE and "bits above Bits Stored" in lossless.reason
    package = study_package(study, "lossless")
    [entry] = [e for e in package.entries if e.path.endswith(".dcm")]
    assert entry.code == "fallback" and "lossless compression not possible" in entry.label
    from apps.imaging.blobs import open_blob

    with open_blob(entry.blob) as fh:
        assert np.array_equal(_stored(fh.read()), samples)  # every bit of the original


def test_the_fixture_is_what_it_says():
    """The overlay really is in the stored samples, and pixel_array really hides it."""
    data, samples = _with_overlay_in_bit_15()
    assert np.array_equal(_stored(data), samples) and int((samples & 0x8000 != 0).sum()) == 500
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not (pydicom.dcmread(io.BytesIO(data)).pixel_array & 0x8000).any()
    assert Path(get_testdata_file("CT_small.dcm")).exists()
