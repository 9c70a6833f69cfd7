"""The memory a frame's rendering takes, against its decoded size, and the images it makes.

pydicom's ``apply_modality_lut`` makes a float64 copy of a frame whenever it has a Rescale
Slope/Intercept (8 bytes a pixel of 8-bit data), the window made another float32 copy and two
temporaries, and a palette was applied in 16 bits (6 bytes a pixel) and then shifted and copied to
8 bits: one frame within the decoded-size budget (256 MB) took up to 17 times that in the web
process. The rendering now makes one float32 copy, windowed in place, and looks a palette up in 8
bits; the diagnostic PNG is written in blocks of rows.

numpy reports its allocations to tracemalloc, which measures the peak here (Pillow's own image
memory is not seen by it: an 8-bit image, a byte a pixel of output). Test data: pydicom's test
files, and generated noise (noise, which does not compress, is the worst case of the PNG)."""

from __future__ import annotations

import io
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array
from pydicom.uid import ExplicitVRLittleEndian

from apps.imaging import pixels
from apps.viewer import services as frames
from tests.dicomfiles import pydicom_file, read_dataset


def _bytes(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _mono8_rescaled() -> bytes:
    """pydicom's OBXXXX1A.dcm (8-bit) as monochrome with a fractional Rescale Slope/Intercept:
    pydicom's corpus has no 8-bit monochrome file with one."""
    ds = read_dataset(pydicom_file("OBXXXX1A.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME2"
    for keyword in ("RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
                    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
                    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData"):
        if keyword in ds:
            del ds[keyword]
    ds.RescaleSlope, ds.RescaleIntercept = "0.37", "-12.5"
    return _bytes(ds)


def _noise(kind: str, size: int = 1024) -> tuple[bytes, int]:
    """A ``size`` x ``size`` frame of noise of ``kind``, rewritten from a pydicom test file, and its
    decoded size."""
    ds = read_dataset(pydicom_file("OBXXXX1A.dcm" if kind == "palette 8-bit" else "CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    bits = 16 if kind == "mono 16-bit rescaled" else 8
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = bits - 1, 0, 1
    if kind != "palette 8-bit":
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.PixelData = np.random.default_rng(1).integers(0, 2**bits, (size, size), dtype=f"uint{bits}").tobytes()
    return _bytes(ds), size * size * bits // 8


def _peak(call) -> int:
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# Measured (1024 x 1024 noise): before 17.0, 8.5 and 18.8 (the diagnostic PNG of the palette's RGB)
# times the decoded size; now 6.1, 4.0 and 5.7. The 8-bit monochrome frame's peak is its stored
# bytes, its decoded bytes and its float32 modality values together (1 + 1 + 4).
BOUNDS = {"mono 8-bit rescaled": 6.5, "mono 16-bit rescaled": 4.5, "palette 8-bit": 6.0}


@pytest.mark.parametrize("quality", ["diagnostic", "preview"])
@pytest.mark.parametrize("kind", list(BOUNDS))
def test_a_frame_is_rendered_within_a_few_times_its_decoded_size(kind, quality):
    data, size = _noise(kind)
    request = frames.FrameRequest(quality=quality)
    peak = _peak(lambda: frames.frame_render(src=io.BytesIO(data), request=request))
    assert peak / size <= BOUNDS[kind], f"{kind} {quality}: {peak / size:.1f} x the decoded size"
    peak = _peak(lambda: pixels.render_frame(io.BytesIO(data)))
    assert peak / size <= BOUNDS[kind], f"{kind} render_frame: {peak / size:.1f} x the decoded size"


def _old_8bit(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The window as it was computed (float32 of pydicom's float64 modality values)."""
    width = max(float(width), 1.0)
    low = float(center) - 0.5 - (width - 1.0) / 2.0
    scale = 255.0 / max(width - 1.0, 1e-6)
    out = (values.astype(np.float32) - np.float32(low)) * np.float32(scale)
    out = np.nan_to_num(np.clip(out, 0.0, 255.0), nan=0.0)
    return (out + np.float32(0.5)).astype(np.uint8)


def _served(data: bytes, center: float | None = None, width: float | None = None) -> tuple[np.ndarray, object]:
    rendered = frames.frame_render(src=io.BytesIO(data), request=frames.FrameRequest(
        quality="diagnostic", center=center, width=width))
    return np.asarray(Image.open(io.BytesIO(rendered.body))), rendered


def _compare(served: np.ndarray, reference: np.ndarray, where: str) -> int:
    assert served.shape == reference.shape, where
    difference = np.abs(served.astype(np.int16) - reference.astype(np.int16))
    assert int(difference.max()) <= 1, f"{where}: {int(difference.max())} levels"
    return int(np.count_nonzero(difference))


MONOCHROME = ["CT_small.dcm", "693_UNCR.dcm", "MR2_UNCR.dcm", "MR2_J2KR.dcm", "mlut_18.dcm", "mono8 rescaled"]


@pytest.mark.parametrize("name", MONOCHROME)
def test_a_rescaled_monochrome_frame_shows_what_pydicom_s_modality_values_showed(name):
    data = _mono8_rescaled() if name == "mono8 rescaled" else Path(pydicom_file(name)).read_bytes()
    ds = read_dataset(io.BytesIO(data))
    values = apply_modality_lut(pixel_array(ds), ds)  # float64 (or the Modality LUT's integers)
    info = pixels.frame_info(io.BytesIO(data))
    low, high = float(values.min()), float(values.max())
    window = info.window or pixels.MODALITY_DEFAULTS.get(info.modality) or ((low + high) / 2, max(high - low, 1.0))
    served, rendered = _served(data)
    assert rendered.default_center == pytest.approx(window[0], rel=1e-6, abs=1e-4), name
    assert rendered.default_width == pytest.approx(window[1], rel=1e-6, abs=1e-4), name
    changed = _compare(served, _old_8bit(values, *window), name)
    # narrow windows across the values (a level for a few of them): rounding differences would show
    for center in np.linspace(low, high, 5):
        for width in (2.0, 7.0, (high - low) / 3 or 1.0):
            served, _ = _served(data, float(center), float(width))
            changed += _compare(served, _old_8bit(values, center, width), f"{name} {center}/{width}")
    assert changed == 0, f"{name}: {changed} pixels one level apart"


PALETTES = ["OBXXXX1A.dcm", "OBXXXX1A_expb.dcm", "OBXXXX1A_rle.dcm", "OT-PAL-8-face.dcm", "examples_palette.dcm",
            "gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm"]


@pytest.mark.parametrize("name", PALETTES)
def test_a_palette_frame_shows_the_colours_of_the_whole_frame_s_lookup(name):
    """The old way, pydicom's lookup of the whole frame in 16 bits and then made 8-bit, against
    the lookup of every index value once and that table indexed by the frame."""
    data = Path(pydicom_file(name)).read_bytes()
    with pixels._read_header(io.BytesIO(data)) as ds:  # a transfer syntax for a file without one
        arr = pixel_array(ds, index=0 if pixels.frames_of(ds) > 1 else None)
    served, _ = _served(data)
    assert np.array_equal(served, pixels._palette_8bit(apply_color_lut(arr, ds), ds)), name


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (501, 703), (501, 703, 3)])
def test_a_png_written_in_blocks_of_rows_is_the_image(shape, monkeypatch):
    monkeypatch.setattr(frames, "PNG_BLOCK_BYTES", 2000)  # blocks of rows, and a last short one
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8))
    body = frames.encode_png(image)
    assert body.count(b"IDAT") > (1 if shape[0] > 100 else 0)  # noise: zlib's output comes block by block
    decoded = Image.open(io.BytesIO(body))
    assert decoded.mode == image.mode and np.array_equal(np.asarray(decoded), np.asarray(image))


@pytest.mark.parametrize("name", ["CT_small.dcm", "OBXXXX1A.dcm"])
def test_a_decoded_frame_is_left_as_it_was_unless_its_rendering_may_consume_it(name):
    frame = pixels.load_frame(pydicom_file(name))
    before = frame.pixels.copy()
    pixels.image_from(frame, invert=True)
    assert np.array_equal(frame.pixels, before)
    kept = np.asarray(pixels.image_from(frame, invert=True))
    assert np.array_equal(np.asarray(pixels.image_from(frame, invert=True, consume=True)), kept)


@pytest.mark.parametrize(("slope", "intercept"), [("1e36", "0"), ("1", "3e38"), ("-1e30", "5"), ("0.001", "-1e-30")])
def test_a_huge_or_tiny_rescale_shows_as_it_did(slope, intercept):
    """Values that float32 cannot hold are rescaled by pydicom in float64, as before."""
    ds = read_dataset(pydicom_file("CT_small.dcm"))
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    data = _bytes(ds)
    values = apply_modality_lut(pixel_array(ds), ds)
    served, _ = _served(data, 40.0, 400.0)
    assert _compare(served, _old_8bit(values, 40.0, 400.0), slope) == 0


@pytest.mark.parametrize(("dtype", "low", "slope", "intercept"), [
    (np.int32, 2**28, 1.0, -(2.0**28)),  # stored values past 2**24, an intercept that cancels them
    (np.uint32, 3_000_000_000, 1e-3, -3_000_000.0),
])
def test_32_bit_stored_values_are_rescaled_exactly(dtype, low, slope, intercept):
    """float32 holds 8- and 16-bit stored values exactly, not 32-bit ones above 2**24: rounded
    before the rescale, they came out up to 16 units off, 41 grey levels at a narrow window, in
    an image labelled diagnostic. They are rescaled in float64, as pydicom does."""
    stored = np.random.default_rng(1).integers(low, low + 2000, size=(64, 64), dtype=dtype)
    ds = pydicom.Dataset()
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    expected = apply_modality_lut(stored, ds)
    got = pixels._modality(stored, ds)
    lo, hi = float(expected.min()), float(expected.max())
    for center, width in (((lo + hi) / 2, hi - lo), ((lo + hi) / 2, (hi - lo) / 20)):
        assert np.array_equal(pixels.to_8bit(expected, center, width), pixels.to_8bit(got, center, width))


def test_a_dimension_with_several_values_is_undecodable_not_a_server_error():
    """A damaged header can hold Rows = [128, 128] (a US element of 4 bytes): int() of it had
    raised TypeError, a 500 in the viewer; the frame is refused with a reason instead."""
    ds = read_dataset(pydicom_file("CT_small.dcm"))
    ds["Rows"].value = [128, 128]
    with pytest.raises(pixels.UndecodableFrame) as refused:
        pixels.load_frame(io.BytesIO(_bytes(ds)))
    assert str(refused.value.reason) == "The file does not say how large its image is."
