"""Compressed (encapsulated) pixel data is whole only if its fragments reach the sequence
delimiter inside the file (apps.imaging.dicom._check_fragments). Only the file's last eight bytes
had been read: a file with anything after its pixel data (Data Set Trailing Padding, as pydicom's
MR_small_RLE.dcm has, or a digital signature) was refused as "truncated", and a cut file that
happened to end in the delimiter's bytes was taken."""

from __future__ import annotations

import io
import struct

import pytest
from pydicom.data import get_testdata_file

from apps.imaging import dicom

ITEM = struct.pack("<HH", 0xFFFE, 0xE000)
DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def _bytes(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as fh:
        return fh.read()


def _parse(data: bytes) -> dicom.DicomHeader:
    return dicom.parse(io.BytesIO(data))


def _padding(n: int) -> bytes:
    """A Data Set Trailing Padding element (FFFC,FFFC), explicit VR OB, of n zero bytes."""
    return struct.pack("<HH2s2xI", 0xFFFC, 0xFFFC, b"OB", n) + bytes(n)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_pydicoms_compressed_files_with_trailing_elements_are_whole(name):
    data = _bytes(name)
    assert not data.endswith(DELIMITER)  # something follows the pixel data
    assert _parse(data).rows == 64


def test_trailing_padding_after_compressed_pixel_data_is_accepted():
    data = _bytes("SC_rgb_rle.dcm")
    assert data.endswith(DELIMITER)
    assert _parse(data + _padding(16)).rows == _parse(data).rows


def test_a_cut_inside_a_fragment_is_truncated_even_when_the_file_ends_like_the_delimiter():
    data = _bytes("SC_rgb_rle.dcm")
    last_item = data.rindex(ITEM)
    cut = data[:last_item + 8 + 10] + DELIMITER  # ten bytes of the last fragment, then the end marker's bytes
    with pytest.raises(dicom.DicomError, match="truncated: the compressed pixel data has no end marker"):
        _parse(cut)


def test_a_cut_before_the_delimiter_is_truncated():
    data = _bytes("SC_rgb_rle.dcm")
    with pytest.raises(dicom.DicomError, match="truncated: the compressed pixel data has no end marker"):
        _parse(data[:-8])


def test_something_other_than_fragments_is_damaged():
    data = _bytes("SC_rgb_rle.dcm")
    first_item = data.index(ITEM, data.index(struct.pack("<HH", 0x7FE0, 0x0010)))
    broken = data[:first_item] + struct.pack("<HH", 0x0008, 0x0010) + data[first_item + 4:]
    with pytest.raises(dicom.DicomError, match="damaged: the compressed pixel data is not a sequence of fragments"):
        _parse(broken)


def test_pixel_data_written_in_implicit_vr_in_an_explicit_file_is_read_as_pydicom_reads_it():
    # pydicom's SC_rgb_jpeg.dcm: JPEG baseline (explicit VR), but its Pixel Data element has no VR;
    # its first two length bytes had been read as a VR and the next two (0xFFFF) as a length
    data = _bytes("SC_rgb_jpeg.dcm")
    assert _parse(data).rows == 256
    with pytest.raises(dicom.DicomError, match="truncated: the compressed pixel data has no end marker"):
        _parse(data[:-200])
