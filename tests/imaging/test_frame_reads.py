"""One viewer frame of a multi-frame instance reads that frame, not the whole pixel data.

``pixels.load_frame`` handed pydicom's ``pixel_array`` the Dataset, whose deferred pixel data
pydicom then read (and the blob store decrypted) in full for every frame request, and checked a
JPEG 2000 frame's codestream for an irreversible transform from the whole value again: one frame
of a 100 MB cine held 200 MB for a second, and the viewer asks several at once (found by review).
A value left in the file is now read from the decrypted stream, that frame's bytes alone (native)
or its codestream by the offset table (encapsulated); frames come out as a whole decode gives
them. tracemalloc sees every bytes object and numpy array the read makes."""

from __future__ import annotations

import io
import tracemalloc
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, get_frame
from pydicom.pixels import apply_modality_lut, compress, pixel_array
from pydicom.uid import JPEG2000, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from apps.imaging import pixels
from apps.imaging.blobs import put_blob
from apps.imaging.models import Instance, Series
from bench.frames_synthetic import ct_phantom_slice
from tests.dicomfiles import pydicom_file, read_dataset
from tests.factories import CaseFactory, StudyFactory

pytestmark = pytest.mark.django_db

ROWS = 512


def _store(org, clinician, ds: pydicom.Dataset) -> Instance:
    """``ds`` written and stored as one encrypted instance of a new study of ``org``."""
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician)
    study = StudyFactory(organization=org, case=case)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    blob = put_blob(buf, organization=org)
    del buf
    series = Series.objects.create(organization=org, study=study, series_instance_uid=generate_uid(),
                                   series_number=1, modality=str(ds.get("Modality") or "OT"), num_instances=1)
    return Instance.objects.create(
        organization=org, study=study, series=series, blob=blob, sop_instance_uid=generate_uid(),
        sop_class_uid=str(ds.SOPClassUID), transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        instance_number=1, frames=int(ds.get("NumberOfFrames") or 1), rows=ds.Rows, columns=ds.Columns,
        size=blob.size, sha256=blob.sha256)


def _peak(fn, *args):
    tracemalloc.start()
    try:
        result = fn(*args)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def _cine(frames: int) -> tuple[pydicom.Dataset, np.ndarray]:
    """A native 16-bit CT cine of ``frames`` 512 x 512 frames, each its own (the phantom plus the
    frame's number), and its stored values."""
    ds = ct_phantom_slice(0, rows=ROWS, columns=ROWS, study_uid=generate_uid(), series_uid=generate_uid())
    base = ds.pixel_array
    stack = np.repeat(base[np.newaxis], frames, axis=0)
    stack += np.arange(frames, dtype=stack.dtype)[:, np.newaxis, np.newaxis]
    ds.NumberOfFrames = frames
    ds.PixelData = stack.tobytes()
    return ds, stack


def test_one_frame_of_a_native_cine_reads_that_frame(org_a, clinician_a):
    ds, stack = _cine(80)  # 40 MB of pixel data, a frame of 512 KB
    whole = len(ds.PixelData)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    inst = _store(org_a, clinician_a, ds)
    del ds
    frame, peak = _peak(pixels.load_frame, inst, 57)
    # the frame's stored values (512 KB), its float32 modality values (1 MB), the blob's chunk
    assert peak < whole // 10, f"{peak // 1_000_000} MB held for one frame of {whole // 1_000_000} MB"
    expected = stack[57].astype(np.float32) * np.float32(slope) + np.float32(intercept)
    assert frame.pixels.shape == (ROWS, ROWS)
    assert np.array_equal(frame.pixels, expected)


def _j2k_codestream(arr: np.ndarray, template: pydicom.Dataset, syntax: str = JPEG2000Lossless, **options) -> bytes:
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
                    "BitsStored", "HighBit", "PixelRepresentation"):
        setattr(ds, keyword, template.get(keyword))
    ds.PixelData = arr.tobytes()
    compress(ds, syntax, arr, **options)
    return get_frame(ds.PixelData, 0)


def test_one_frame_of_a_jpeg2000_stack_reads_that_frame(org_a, clinician_a):
    """A JPEG 2000 (.91: lossless or lossy by its codestream) stack with a Basic Offset Table,
    its frames of noise (which does not compress) reversibly coded but frame 5, irreversibly: the
    frame's codestream alone is read, to decode it and to see whether it is lossy."""
    ds = ct_phantom_slice(0, rows=ROWS, columns=ROWS, study_uid=generate_uid(), series_uid=generate_uid())
    rng = np.random.default_rng(8)
    noise = [rng.integers(0, 4096, (ROWS, ROWS), dtype=np.uint16).astype(ds.pixel_array.dtype) for _ in range(3)]
    reversible = [_j2k_codestream(arr, ds) for arr in noise]
    irreversible = _j2k_codestream(noise[2], ds, JPEG2000, j2k_cr=[40])
    codestreams = [reversible[i % 3] for i in range(150)]
    codestreams[5] = irreversible
    ds.NumberOfFrames = len(codestreams)
    ds.PixelData = encapsulate(codestreams, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000
    whole = len(ds.PixelData)
    assert whole > 60_000_000
    inst = _store(org_a, clinician_a, ds)
    del ds, codestreams
    frame, peak = _peak(pixels.load_frame, inst, 40)
    assert peak < whole // 8, f"{peak // 1_000_000} MB held for one frame of {whole // 1_000_000} MB"
    assert np.array_equal(frame.pixels, noise[40 % 3].astype(np.float32) - np.float32(1024.0))
    assert frame.info.lossy is False
    lossy, peak = _peak(pixels.load_frame, inst, 5)
    assert lossy.info.lossy is True  # its own codestream's 9-7 transform
    assert peak < whole // 8


@pytest.mark.parametrize("name", ["emri_small.dcm", "emri_small_big_endian.dcm", "emri_small_RLE.dcm",
                                  "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm",
                                  "SC_rgb_rle_2frame.dcm", "SC_rgb_2frame.dcm", "color3d_jpeg_baseline.dcm"])
def test_frames_as_a_whole_decode_gives_them(org_a, clinician_a, name):
    """Every frame of pydicom's multi-frame test files, read from the stored (encrypted) instance,
    equals that frame of the whole pixel data decoded at once, its Modality LUT applied."""
    source = read_dataset(pydicom_file(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pixel_array(source)
    inst = _store(org_a, clinician_a, source)
    count = int(source.NumberOfFrames)
    assert count > 1
    for index in sorted({0, 1, count // 2, count - 1}):
        frame = pixels.load_frame(inst, index)
        expected = reference[index]
        if not frame.info.is_colour:
            expected = apply_modality_lut(expected, source)
        assert frame.pixels.shape == expected.shape, (name, index)
        assert np.array_equal(frame.pixels, expected), (name, index)
    with pytest.raises(pixels.UndecodableFrame):
        pixels.load_frame(inst, count)


def test_a_cine_cut_short_is_refused_as_before_without_reading_it_whole(org_a, clinician_a):
    """Native pixel data shorter than its header says (frames missing at the end) is refused as a
    whole decode refused it, "shorter than its header says", for any frame, including one that is
    there; it is measured in the file, not read whole to say so."""
    ds, _stack = _cine(80)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) - 3 * ROWS * ROWS * 2]  # the last 3 frames missing
    whole = len(ds.PixelData)
    inst = _store(org_a, clinician_a, ds)
    del ds
    for index in (0, 79):
        tracemalloc.start()
        try:
            with pytest.raises(pixels.UndecodableFrame) as refused:
                pixels.load_frame(inst, index)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "shorter than its header says" in str(refused.value.reason)
        assert peak < whole // 10, f"{peak // 1_000_000} MB held to refuse a frame of {whole // 1_000_000} MB"
