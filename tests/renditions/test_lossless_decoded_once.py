"""A lossless copy is decoded once to be checked, and a compressed original once to be copied.

The check of a copy asked two things of it: its pixels (``pixel_array``) equal the original's,
and no sample holds data above Bits Stored (decoded as stored). For a 12-bit CT slice those were
two decodings of the same encapsulated frames, most of the slice's lossless time (the suite's
profile: ~32 s of ``lossless_encode``). ``encoders._decoded`` gives both from one decoding; these
tests hold it to the two answers it replaces, on every codec and every kind of unused bits."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels.decoders.base import DecodeRunner

from apps.renditions import encoders
from bench.ingest.synthetic import ct_slice


def _saved(ds) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _twelve_bit_ct(*, compressed_as=None) -> bytes:
    ds = ct_slice(study_uid="1.2.826.0.1.3680043.8.498.1", series_uid="1.2.826.0.1.3680043.8.498.2", index=0,
                  rows=64, columns=64)
    if compressed_as is not None:
        ds.compress(compressed_as, generate_instance_uid=False)
    return _saved(ds)


@pytest.fixture
def frame_decodings(monkeypatch):
    """How many encapsulated frames pydicom decodes (each call of a codec's decoder)."""
    calls = []
    decode = DecodeRunner._decode_frame

    def counted(self, src):
        calls.append(len(src))
        return decode(self, src)

    monkeypatch.setattr(DecodeRunner, "_decode_frame", counted)
    return calls


@pytest.mark.parametrize("codec", list(encoders.LOSSLESS_CODECS))
def test_the_copy_of_an_uncompressed_12_bit_slice_is_decoded_once(codec, frame_decodings):
    data = _twelve_bit_ct()
    copy = encoders.lossless_encode(data, codec)
    assert len(frame_decodings) == 1  # the copy's one frame, once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(pydicom.dcmread(io.BytesIO(copy)).pixel_array,
                              pydicom.dcmread(io.BytesIO(data)).pixel_array)


def test_a_compressed_original_and_its_copy_are_decoded_once_each(frame_decodings):
    data = _twelve_bit_ct(compressed_as=pydicom.uid.RLELossless)
    copy = encoders.lossless_encode(data, "jpeg-ls")
    assert len(frame_decodings) == 2  # the original's frame, then the copy's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(pydicom.dcmread(io.BytesIO(copy)).pixel_array,
                              pydicom.dcmread(io.BytesIO(data)).pixel_array)


def _variants():
    """12 bits stored in 16: unsigned with zeros above, signed with the sign repeated, signed with
    zeros above, and each with an overlay in bit 15 (data above Bits Stored)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    values = np.clip(np.frombuffer(ds.PixelData, dtype="<i2").astype(np.int32) - 1024, -2048, 2047)
    for name, signed, samples in (("unsigned", False, values + 2048), ("sign repeated", True, values & 0xFFFF),
                                  ("zeros above", True, values & 0x0FFF)):
        for overlay in (False, True):
            stored = samples.copy()
            if overlay:
                stored[:500] ^= 0x8000
            variant = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
            variant.PixelData = stored.astype("<u2").tobytes()
            variant.BitsStored, variant.HighBit, variant.PixelRepresentation = 12, 11, int(signed)
            yield f"{name}{' overlay' if overlay else ''}", variant


@pytest.mark.parametrize("syntax", [None, pydicom.uid.RLELossless, pydicom.uid.JPEGLSLossless,
                                    pydicom.uid.JPEG2000Lossless])
def test_one_decoding_gives_what_the_two_gave(syntax):
    """``_decoded`` answers as ``pixel_array`` and ``_unused_bits_hold_data`` do, encoded or not,
    whatever its unused bits hold."""
    for name, ds in _variants():
        if syntax is not None:
            # encoded as stored, every bit (RLE keeps them; JPEG-LS and JPEG 2000 at 16 bits)
            ds.BitsStored, ds.HighBit = 16, 15
            arr = np.frombuffer(ds.PixelData, dtype="<i2" if ds.PixelRepresentation else "<u2").reshape(
                ds.Rows, ds.Columns)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.compress(syntax, arr, generate_instance_uid=False)
            ds.BitsStored, ds.HighBit = 12, 11
        for _round in range(2):  # as read, and read again from its file
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = (ds.pixel_array.copy(), encoders._unused_bits_hold_data(ds))
                pixels, high_bits = encoders._decoded(ds)
            assert high_bits == expected[1], (syntax, name)
            assert pixels.dtype == expected[0].dtype and np.array_equal(pixels, expected[0]), (syntax, name)
            ds = pydicom.dcmread(io.BytesIO(_saved(ds)))


def _first_one_at_a_time(data: bytes, codecs) -> tuple[str, bytes] | str:
    """What the renditions made before: ``lossless_encode`` with each codec in turn, the
    distinct reasons joined when none made a copy."""
    from apps.core.i18n import Deferred

    reasons = []
    for codec in codecs:
        try:
            return codec, encoders.lossless_encode(data, codec)
        except encoders.NotEncodable as exc:
            if exc.reason not in reasons:
                reasons.append(exc.reason)
    return str(Deferred.join(reasons))


def test_every_test_file_gets_the_copy_or_the_reasons_it_got_one_codec_at_a_time():
    """The first codec that makes a copy, its bytes, or every reason, as trying the codecs one by
    one gave them: for each of pydicom's test files (lossy, colour, big-endian, multi-frame,
    damaged, already JPEG-LS or RLE...)."""
    from pathlib import Path

    from pydicom.data.data_manager import DATA_ROOT

    from apps.renditions.services import LOSSLESS_PREFERENCE

    files = sorted((Path(DATA_ROOT) / "test_files").rglob("*.dcm"))
    assert len(files) >= 50
    outcomes = set()
    for path in files:
        data = path.read_bytes()
        try:
            got = encoders.lossless_encode_first(data, LOSSLESS_PREFERENCE)
        except encoders.NotEncodable as exc:
            got = str(exc.reason)
        assert got == _first_one_at_a_time(data, LOSSLESS_PREFERENCE), path.name
        outcomes.add(got[0] if isinstance(got, tuple) else "refused")
    assert outcomes == {"jpeg-ls", "jpeg2000", "rle", "refused"}  # every path was taken


def test_an_original_refused_for_what_it_is_is_read_once(monkeypatch):
    """A lossy original: refused once, not once per codec (its data set read once)."""
    from apps.imaging import dicom
    from apps.renditions.services import LOSSLESS_PREFERENCE

    reads = []
    read_whole = dicom.read_whole
    monkeypatch.setattr(dicom, "read_whole", lambda *a, **k: reads.append(1) or read_whole(*a, **k))
    data = _testfile("SC_rgb_jpeg_dcmtk.dcm")
    with pytest.raises(encoders.NotEncodable, match="already lossy-compressed"):
        encoders.lossless_encode_first(data, LOSSLESS_PREFERENCE)
    assert len(reads) == 1


def test_an_original_already_in_the_first_codec_is_decoded_once(frame_decodings):
    """A JPEG-LS original: "already JPEG-LS" said without decoding it again for JPEG 2000."""
    from apps.renditions.services import LOSSLESS_PREFERENCE

    data = _twelve_bit_ct(compressed_as=pydicom.uid.JPEGLSLossless)
    codec, copy = encoders.lossless_encode_first(data, LOSSLESS_PREFERENCE)
    assert codec == "jpeg2000"
    assert len(frame_decodings) == 2  # the original's frame, then the copy's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(pydicom.dcmread(io.BytesIO(copy)).pixel_array,
                              pydicom.dcmread(io.BytesIO(data)).pixel_array)


def _testfile(name: str) -> bytes:
    with open(get_testdata_file(name, download=False), "rb") as fh:
        return fh.read()


def test_one_decoding_gives_what_the_two_gave_for_every_test_file():
    """The same on pydicom's test files (multi-frame, colour, signed, 12 bits in 16...)."""
    from pathlib import Path

    from pydicom.data.data_manager import DATA_ROOT

    compared = 0
    for path in sorted((Path(DATA_ROOT) / "test_files").rglob("*.dcm")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                expected = (pydicom.dcmread(path, force=True).pixel_array, encoders._unused_bits_hold_data(
                    pydicom.dcmread(path, force=True)))
            except Exception:  # no pixels, or not decodable: not what is compared here
                continue
            pixels, high_bits = encoders._decoded(pydicom.dcmread(path, force=True))
        assert high_bits == expected[1], path.name
        assert pixels.dtype == expected[0].dtype and np.array_equal(pixels, expected[0]), path.name
        compared += 1
    assert compared >= 50
