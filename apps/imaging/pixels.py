"""Pixels of stored instances: decode one frame, apply the Modality LUT and a window, make 8-bit.

Public API (the viewer and the renditions use it; nothing else decodes pixels):

- ``frame_info(src) -> FrameInfo``: the header facts needed to show a frame (no pixel decoding).
- ``header_lossy(ds)`` and ``irreversibly_coded(ds, frames=None)``: lossy by the header's flag or
  transfer syntax, and by a JPEG 2000 codestream's 9-7 irreversible transform (``apps.imaging.j2k``).
- ``frame_count(src) -> int``
- ``decode_frame(src, index) -> numpy.ndarray``: one frame in *modality values*: the Modality LUT
  (Rescale Slope/Intercept or a Modality LUT Sequence) applied to monochrome data, so CT comes
  out in Hounsfield units (float32 for a Rescale Slope/Intercept); colour data (RGB, YBR_*,
  PALETTE COLOR) comes out as RGB (H, W, 3); a palette with an Alpha table is composited on
  black, the viewer's background (``_palette_rgb``).
- ``load_frame(src, index) -> DecodedFrame``: the frame and its ``FrameInfo`` from one read.
- ``default_window(src) -> (center, width)``: the file's first WindowCenter/WindowWidth, else the
  modality default (CT soft tissue 40/400), else the frame's own value range.
- ``to_8bit(array, center, width, invert=False) -> uint8 array``: the DICOM linear VOI function
  (PS3.3 C.11.2.1.2); colour frames are scaled, not windowed.
- ``render_frame(src, index, *, center=None, width=None, invert=None, max_size=None) -> PIL.Image``
  (mode "L" or "RGB"). ``invert=None`` inverts MONOCHROME1 so that it displays like MONOCHROME2.
- ``PRESETS``: CT window presets (lung, mediastinum, bone, brain) as (center, width).
- ``decoded_bytes(ds, frames=1) -> int`` and ``check_decoded_size(ds, frames, limit, reason)``:
  the memory the decoded pixels take, from the header alone, and the refusal of a file over a
  budget before anything is decoded (the lossless copy checks a whole object with them).
- ``check_colour_model(ds)``: the refusal, by name, of a colour model whose samples are not shown
  here (``UNSHOWN_COLOUR_MODELS``; ``COLOUR_MODELS_SHOWN_ONLY_FROM`` in any other transfer
  syntax); frames and the lossless copy are refused through it.
- ``UndecodableFrame(reason)``: raised for anything pydicom and its installed codecs cannot turn
  into pixels (unsupported transfer syntax, missing pixel data, truncated or corrupt data, frame
  index out of range, a frame over ``settings.LIGHTBOX_MAX_FRAME_BYTES`` decoded). ``reason`` is
  short, free of patient data and safe to show; it is an ``apps.core.i18n.Deferred``, shown with
  ``i18n.translate`` (a rendition stores it). Not raised for the storage failing or for a stored
  blob whose bytes were altered (``PASSED_ON``: ``cryptography.exceptions.InvalidTag``): those are
  raised as they are, so the caller tells an integrity failure from a file that cannot be decoded.

``src`` is an ``apps.imaging.models.Instance`` (its blob is opened and decrypted with
``open_blob``), a path, or a readable, seekable binary file object. Frames are decoded one at a
time: for native (uncompressed) data and for encapsulated data with an offset table only that
frame's bytes are read, so a large multi-frame object is never held whole in memory.

Compressed transfer syntaxes are decoded by pydicom's plugins: pylibjpeg with pylibjpeg-libjpeg
(JPEG, JPEG-LS), pylibjpeg-openjpeg (JPEG 2000) and pylibjpeg-rle (RLE), plus pydicom's own RLE
and deflate support.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np
import pydicom
from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.utils.translation import gettext_noop
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, get_frame
from pydicom.pixels import apply_color_lut, apply_modality_lut, as_pixel_options, get_decoder, pixel_array
from pydicom.pixels.decoders.base import DecodeRunner

from apps.core.i18n import Deferred
from apps.imaging import dicom, j2k
from apps.imaging.dicom import native_pixel_bytes as dicom_native_pixel_bytes
from apps.imaging.dicom import values
from apps.imaging.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

#: raised as they are, never taken for a damaged file: the storage failing (unreachable, a disk
#: error: the caller retries or says so), and a stored blob whose bytes were altered (its
#: authentication tag fails, ``apps.imaging.blobs.open_blob``: an integrity failure, which the
#: caller records for the security officer, not "cannot be read as DICOM")
PASSED_ON: tuple[type[Exception], ...] = (*STORAGE_ERRORS, InvalidTag)

# (center, width) in Hounsfield units.
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
MODALITY_DEFAULTS: dict[str, tuple[float, float]] = {"CT": (40.0, 400.0)}

# Transfer syntaxes that are lossy by their name (JPEG baseline/extended and the retired lossy JPEG
# processes, JPEG-LS near-lossless, MPEG-2/4, HEVC, JPEG XL recompressed from a lossy JPEG or
# possibly lossy), whether or not the file says Lossy Image Compression = 01.
LOSSY_TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.52", "1.2.840.10008.1.2.4.53",
    "1.2.840.10008.1.2.4.54", "1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.56", "1.2.840.10008.1.2.4.59",
    "1.2.840.10008.1.2.4.60", "1.2.840.10008.1.2.4.61", "1.2.840.10008.1.2.4.62", "1.2.840.10008.1.2.4.63",
    "1.2.840.10008.1.2.4.64", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102",
    "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105",
    "1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108",
    "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112",
})
# Transfer syntaxes that are lossless by their name: native (implicit, explicit little and big
# endian, deflated), RLE, lossless JPEG (processes 14, 15, 28, 29 and SV1), JPEG-LS lossless,
# JPEG 2000 lossless only (parts 1 and 2), JPEG XL lossless, HTJ2K lossless. The JPEG 2000
# syntaxes that may be either (.91, .93, .203) are decided by their codestream (``irreversibly_coded``).
# Any other transfer syntax (a private one, one this list does not know yet) is taken as lossy:
# an original is never called diagnostic-grade on a guess.
LOSSLESS_TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.58", "1.2.840.10008.1.2.4.65",
    "1.2.840.10008.1.2.4.66", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
})


def transfer_syntax_lossy(tsuid: str) -> bool:
    """Lossy by the transfer syntax's name: one of LOSSY_TRANSFER_SYNTAXES, or one known to be
    neither lossless (LOSSLESS_TRANSFER_SYNTAXES) nor a JPEG 2000 syntax whose codestream says.
    An empty UID (no file meta: the data set was read as native) is not lossy."""
    if not tsuid:
        return False
    return tsuid in LOSSY_TRANSFER_SYNTAXES or (tsuid not in LOSSLESS_TRANSFER_SYNTAXES
                                                and tsuid not in j2k.TRANSFER_SYNTAXES)


COLOUR_INTERPRETATIONS = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420",
                          "PALETTE COLOR"}
#: colour models whose samples pydicom hands over as they are: shown as RGB they would be the wrong
#: colours, so they are refused by name (``check_colour_model``), in every transfer syntax. HSV,
#: ARGB and CMYK (retired); YBR_PARTIAL_422 (retired) and YBR_PARTIAL_420 too: pydicom 3 converts
#: only YBR_FULL and YBR_FULL_422 (native, RLE, JPEG-LS and JPEG alike), and its JPEG decoders
#: (pylibjpeg-libjpeg, Pillow) return the codestream's Y, Cb and Cr without a colour transform,
#: so that a JPEG baseline YBR_PARTIAL_422 image was shown as its YCbCr samples, as native, RLE
#: and JPEG-LS ones were. Their conversion (the PS3.3 C.7.6.3.1.2 coefficients, limited range)
#: is not made here: it would be the one colour conversion of this module that pydicom does not
#: make, for a retired model (422) and one meant for MPEG (420), with no real file of either at
#: hand to check it against; a refusal by name is shown instead of a guess.
UNSHOWN_COLOUR_MODELS = frozenset({"HSV", "ARGB", "CMYK", "YBR_PARTIAL_422", "YBR_PARTIAL_420"})
#: colour models shown only from the transfer syntaxes whose decoders give RGB of them, and refused
#: in any other, as UNSHOWN_COLOUR_MODELS are. YBR_ICT and YBR_RCT are JPEG 2000's component
#: transforms (PS3.3 C.7.6.3.1.2), which its decoder undoes (pydicom then names the frame RGB);
#: in native pixel data, RLE, JPEG-LS or JPEG they are not defined (their chroma are the
#: codestream's signed values), pydicom hands the samples over as they are, and shown as RGB
#: they were the wrong colours, labelled as the original.
COLOUR_MODELS_SHOWN_ONLY_FROM: dict[str, frozenset[str]] = {
    "YBR_ICT": frozenset(pydicom.uid.JPEG2000TransferSyntaxes),
    "YBR_RCT": frozenset(pydicom.uid.JPEG2000TransferSyntaxes),
}


class UndecodableFrame(Exception):
    """This frame cannot be turned into pixels here; ``reason`` is safe to show to a user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FrameInfo:
    """Header facts about an instance's pixels (no patient data)."""

    rows: int
    columns: int
    frames: int
    samples_per_pixel: int
    photometric: str
    bits_stored: int
    modality: str
    transfer_syntax_uid: str
    window: tuple[float, float] | None  # the file's first WindowCenter/WindowWidth
    # ``header_lossy``; a frame from ``load_frame`` also when its JPEG 2000 codestream is irreversible
    lossy: bool
    pixel_spacing: tuple[float, float] | None = None
    slice_location: float | None = None

    @property
    def is_colour(self) -> bool:
        return self.samples_per_pixel == 3 or self.photometric in COLOUR_INTERPRETATIONS

    @property
    def invert(self) -> bool:
        return self.photometric == "MONOCHROME1"


@dataclass(frozen=True)
class DecodedFrame:
    pixels: np.ndarray  # modality values (monochrome) or RGB uint (colour)
    info: FrameInfo
    index: int


@contextlib.contextmanager
def _opened(src: Any) -> Iterator[IO[bytes]]:
    from apps.imaging.models import Instance

    if isinstance(src, Instance):
        from apps.imaging.blobs import open_blob

        fh = open_blob(src.blob)
        try:
            yield fh
        finally:
            fh.close()
    elif isinstance(src, str | bytes) or hasattr(src, "__fspath__"):
        with open(src, "rb") as fh:
            yield fh
    else:
        src.seek(0)
        yield src


def _first(value: Any) -> float | None:
    if not (given := values(value)):
        return None
    try:
        number = float(given[0])
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def transfer_syntax_of(ds: Dataset) -> str:
    """The transfer syntax UID the data set was read in ("" when its file meta has none)."""
    return str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")


def _header_int(ds: Dataset, keyword: str, default: int) -> int:
    """A count from the header (Rows, Columns, Samples per Pixel, Bits Allocated...), not
    negative; ``default`` when it is absent, empty or unreadable (a damaged file: several values
    where one is due, or text), which had made int() raise and the viewer answer 500."""
    try:
        return max(int(ds.get(keyword) or default), 0)
    except (TypeError, ValueError):
        return default


def frames_of(ds: Dataset) -> int:
    """Number of Frames, 1 when absent or unreadable."""
    return max(_header_int(ds, "NumberOfFrames", 1), 1)


def _info(ds: Dataset) -> FrameInfo:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise UndecodableFrame(Deferred(gettext_noop("The file holds no pixel data.")))
    tsuid = transfer_syntax_of(ds)
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    spacing = ds.get("PixelSpacing")
    try:
        pixel_spacing = (float(spacing[0]), float(spacing[1])) if spacing and len(spacing) == 2 else None
    except (TypeError, ValueError):
        pixel_spacing = None
    return FrameInfo(
        rows=_header_int(ds, "Rows", 0),  # 0: "does not say how large its image is" (load_frame)
        columns=_header_int(ds, "Columns", 0),
        frames=frames_of(ds),
        samples_per_pixel=_header_int(ds, "SamplesPerPixel", 1),
        photometric=str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip().upper(),
        bits_stored=_header_int(ds, "BitsStored", 0) or _header_int(ds, "BitsAllocated", 8),
        modality=str(ds.get("Modality") or "").strip().upper(),
        transfer_syntax_uid=tsuid,
        window=(center, width) if center is not None and width is not None and width > 0 else None,
        lossy=header_lossy(ds),
        pixel_spacing=pixel_spacing,
        slice_location=_first(ds.get("SliceLocation")),
    )


@contextlib.contextmanager
def _read_header(fh: IO[bytes]) -> Iterator[Dataset]:
    """The data set of ``fh``, its values over 256 bytes left in the file until read, for the
    ``with``. A deflated data set is inflated (``dicom.read``) into a temporary file past 8 MB,
    and refused past ``dicom.inflate_limit``: pydicom inflates it whole into memory, however large
    (a file of 300 KB can need 300 MB), where frames are decoded by the web process."""
    with contextlib.ExitStack() as stack:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = stack.enter_context(dicom.read(fh, stop_before_pixels=False, force=True, defer_size=256))
        except PASSED_ON:
            raise  # the stored file could not be read (storage unreachable, bytes altered), not a damaged file
        except dicom.InflateLimit as exc:
            raise UndecodableFrame(Deferred(gettext_noop(
                "The file's deflated (compressed) data set inflates to more than %(limit)s MB, over this portal's "
                "limit for one file: it cannot be shown here."), limit=exc.limit_mb)) from exc
        except Exception as exc:  # pydicom raises many types on damaged files
            logger.info("pixels: unreadable header (%s)", type(exc).__name__)
            raise UndecodableFrame(Deferred(gettext_noop("The file cannot be read as DICOM."))) from exc
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "TransferSyntaxUID" not in meta and ds.original_encoding[0] is not None:
            # No file meta (or no transfer syntax in it): use the encoding the dataset was read with.
            implicit, little = ds.original_encoding
            meta.TransferSyntaxUID = (pydicom.uid.ImplicitVRLittleEndian if implicit else
                                      pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
        if getattr(ds, "buffer", None) is None and getattr(ds, "filename", None):
            # a file opened by its path: pydicom keeps its name and would open it again for each
            # deferred value; they are read from ``fh`` (a frame's bytes alone: ``_pixel_value``)
            ds.buffer = fh
        yield ds


def header_lossy(ds: Dataset) -> bool:
    """Lossy by the header: Lossy Image Compression (0028,2110) = 01, or a transfer syntax that is
    lossy by its name or not known to be lossless (``transfer_syntax_lossy``)."""
    return str(ds.get("LossyImageCompression") or "").strip() == "01" or transfer_syntax_lossy(transfer_syntax_of(ds))


def irreversibly_coded(ds: Dataset, frames: Iterable[int] | None = None) -> bool:
    """Whether the JPEG 2000 codestream of any of ``frames`` (0-based; every frame when None) used
    the 9-7 irreversible transform (``apps.imaging.j2k``): lossy whatever the header says, as a
    writer may leave Lossy Image Compression out of a .91 (lossy-or-lossless) file. False for other
    transfer syntaxes, and for encapsulation that cannot be split into frames (the decoder reports
    damaged data; this only adds certainty of loss). Reads those frames' codestreams only, from
    the file when the pixel data was left there (``_encapsulated``)."""
    tsuid = transfer_syntax_of(ds)
    if tsuid not in j2k.TRANSFER_SYNTAXES or "PixelData" not in ds:
        return False
    count = frames_of(ds)
    try:
        if frames is None:
            return any(j2k.irreversible(codestream) for codestream in generate_frames(_encapsulated(ds),
                                                                                      number_of_frames=count))
        return any(j2k.irreversible(get_frame(_encapsulated(ds), index, number_of_frames=count)) for index in frames)
    except PASSED_ON:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged encapsulation
        logger.info("pixels: frames not split (%s)", type(exc).__name__)
        return False


PIXEL_KEYWORDS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class _PixelValue:
    """A pixel data value left in the file (``_read_header`` defers values over 256 bytes): the
    stream its data set was read from (the decrypted blob, a deflated data set's inflated copy),
    where the value starts, the bytes of it the stream holds, its keyword and VR."""

    stream: IO[bytes]
    start: int
    held: int
    keyword: str
    vr: str | None


def _pixel_value(ds: Dataset) -> _PixelValue | None:
    """The pixel data value of ``ds`` when it is still in the file, unread; None when it is in
    memory (a small value, a data set read whole) or when ``ds`` holds more than one pixel data
    element (pydicom refuses it by name). ``ds.PixelData`` would read and decrypt all of it, every
    frame of a multi-frame object, to show one."""
    present = [(tag, keyword) for tag, keyword in PIXEL_KEYWORDS.items() if tag in ds]
    if len(present) != 1:
        return None
    tag, keyword = present[0]
    elem = ds.get_item(tag, keep_deferred=True)
    stream = getattr(ds, "buffer", None)
    if not isinstance(elem, RawDataElement) or elem.value is not None or not elem.length or stream is None:
        return None
    end = stream.seek(0, io.SEEK_END)
    held = max(end - elem.value_tell, 0)
    if elem.length != UNDEFINED_LENGTH:
        held = min(held, elem.length)
    return _PixelValue(stream=stream, start=elem.value_tell, held=held, keyword=keyword, vr=elem.VR)


def _encapsulated(ds: Dataset) -> Any:
    """Encapsulated pixel data for pydicom's ``get_frame``/``generate_frames``: the file stream at
    the value's first item when it is still in the file (only the frames asked for are read),
    else the value."""
    value = _pixel_value(ds)
    if value is None:
        return ds.PixelData
    value.stream.seek(value.start)
    return value.stream


def _check_native_length(runner: DecodeRunner, held: int) -> None:
    """pydicom's check of native pixel data's length (``DecodeRunner._validate_buffer``), which it
    makes of a value in memory only: data shorter than the header says, and YBR_FULL_422 data a
    third larger (its Photometric Interpretation is wrong), are refused as before, not shown."""
    expected = math.ceil(runner.frame_length(unit="bytes") * runner.number_of_frames)
    padded = expected + expected % 2
    if held < padded and held != expected:
        raise ValueError("The number of bytes of pixel data is less than expected")
    if held > padded and runner.photometric_interpretation == "YBR_FULL_422":
        ybr_length = expected // 2 * 3
        if held >= ybr_length + ybr_length % 2:
            raise ValueError("The pixel data is a third larger than expected for YBR_FULL_422")


def _frame_array(ds: Dataset, index: int | None) -> np.ndarray:
    """Frame ``index`` of ``ds`` (None: a single-frame object's image) as pydicom decodes it.
    A pixel data value still in the file is read from it, only this frame's bytes (native data)
    or codestream (encapsulated: by the Basic or Extended Offset Table, else fragment by
    fragment), as pydicom's ``pixel_array`` does for a file object; handed the Dataset, pydicom
    reads the whole value first, every frame of it."""
    value = _pixel_value(ds)
    tsuid = pydicom.uid.UID(transfer_syntax_of(ds))
    if value is None or not tsuid:
        return pixel_array(ds, index=index)
    try:
        decoder = get_decoder(tsuid)
    except NotImplementedError:
        raise NotImplementedError(f"No pixel data decoder plugin for '{tsuid.name}'") from None
    opts = as_pixel_options(ds, transfer_syntax_uid=tsuid, pixel_keyword=value.keyword)
    if value.vr in ("OB", "OW"):
        opts["pixel_vr"] = value.vr
    if not tsuid.is_encapsulated:
        runner = DecodeRunner(tsuid)
        runner.set_source(value.stream)
        runner.set_options(**opts)
        runner.validate()
        _check_native_length(runner, value.held)
    value.stream.seek(value.start)
    arr, _properties = decoder.as_array(value.stream, index=index, validate=True, **opts)
    return arr


def frame_info(src: Any) -> FrameInfo:
    """Header facts of ``src`` (an Instance, a path or a binary file object)."""
    with _opened(src) as fh, _read_header(fh) as ds:
        return _info(ds)


def frame_count(src: Any) -> int:
    return frame_info(src).frames


def decoded_bytes(ds: Dataset, frames: int = 1) -> int:
    """The bytes ``frames`` decoded frames of ``ds`` take, from its header alone: rows x columns x
    samples per pixel x bytes per sample (Bits Allocated in whole bytes; 1-bit data is unpacked to
    a byte a pixel; an unreadable Bits Allocated counts as 16 bits)."""
    bits = _header_int(ds, "BitsAllocated", 16) or 16
    samples = max(_header_int(ds, "SamplesPerPixel", 1), 1)
    return _header_int(ds, "Rows", 0) * _header_int(ds, "Columns", 0) * samples * max(-(-bits // 8), 1) * max(frames, 1)


def check_decoded_size(ds: Dataset, *, frames: int, limit: int, reason: str) -> None:
    """Raise UndecodableFrame(``reason`` % size, limit) when ``frames`` decoded frames of ``ds``
    would take more than ``limit`` bytes: a small file (a few bytes of compressed data, or a
    header alone) may declare an image of 65535 x 65535 x 3 samples of 16 bits, whose decoding
    would allocate 25 GB and end the process. ``reason`` is a message id with ``%(size)s`` and
    ``%(limit)s`` (in MB)."""
    size = decoded_bytes(ds, frames)
    if size > limit:
        logger.info("pixels: not decoded, %d MB over the %d MB limit", -(-size // 1_000_000), limit // 1_000_000)
        raise UndecodableFrame(Deferred(reason, size=-(-size // 1_000_000), limit=limit // 1_000_000))


def check_colour_model(ds: Dataset) -> None:
    """Raise UndecodableFrame, naming the colour model, when ``ds``'s pixels are in one that is not
    shown here (UNSHOWN_COLOUR_MODELS, or one of COLOUR_MODELS_SHOWN_ONLY_FROM in another transfer
    syntax). The lossless copy checks an original with it: a copy of samples whose colours are not
    known would be as wrong as showing them, and a JPEG 2000 copy of native YBR_RCT samples (its
    encoder applies the RCT to what it takes for RGB) would be read as RGB everywhere."""
    info = _info(ds)
    _check_colour_model(info.photometric, info.transfer_syntax_uid)


def _check_colour_model(photometric: str, transfer_syntax_uid: str) -> None:
    shown_from = COLOUR_MODELS_SHOWN_ONLY_FROM.get(photometric)
    if photometric in UNSHOWN_COLOUR_MODELS or (shown_from is not None and transfer_syntax_uid not in shown_from):
        raise UndecodableFrame(Deferred(gettext_noop(
            "This file's colour model (%(photometric)s) cannot be shown here."), photometric=photometric))


def _decode(fh: IO[bytes], ds: Dataset, info: FrameInfo, index: int) -> np.ndarray:
    if not 0 <= index < info.frames:
        raise UndecodableFrame(Deferred(gettext_noop("No such frame.")))
    if not info.rows or not info.columns:
        raise UndecodableFrame(Deferred(gettext_noop("The file does not say how large its image is.")))
    _check_colour_model(info.photometric, info.transfer_syntax_uid)
    # before any decoding: one frame (or a single-frame file whole)
    check_decoded_size(ds, frames=1, limit=settings.LIGHTBOX_MAX_FRAME_BYTES, reason=gettext_noop(
        "The image is too large to be shown here: one frame takes %(size)s MB decoded, over this portal's "
        "limit of %(limit)s MB."))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # ``ds`` was read with deferred large values: only this frame's bytes are read
            arr = _frame_array(ds, index if info.frames > 1 else None)
    except PASSED_ON:
        raise  # deferred values are read from the stored file: storage (or altered bytes), not the file
    except Exception as exc:
        logger.info("pixels: undecodable frame (%s, ts=%s)", type(exc).__name__, info.transfer_syntax_uid)
        raise UndecodableFrame(undecodable_reason(ds, exc)) from exc
    if arr.ndim == 3 and info.frames > 1 and arr.shape[-1] != 3:  # a single-frame index still gave a stack
        arr = arr[0]
    if info.photometric == "PALETTE COLOR":
        try:
            arr = _palette_rgb(arr, ds)
        except Exception as exc:
            raise UndecodableFrame(Deferred(gettext_noop("The file's colour palette cannot be applied."))) from exc
    elif not info.is_colour:
        try:
            arr = _modality(arr, ds)
        except Exception as exc:
            raise UndecodableFrame(Deferred(gettext_noop("The file's rescale values cannot be applied."))) from exc
    if arr.ndim not in (2, 3):
        raise UndecodableFrame(Deferred(gettext_noop("The image data has an unexpected shape.")))
    return arr


def transfer_syntax_name(uid: str) -> str:
    """A transfer syntax by its name (pydicom's: "JPEG 2000 Image Compression"), its UID when
    pydicom does not know it (a private one), "?" when there is none."""
    return pydicom.uid.UID(uid).name if uid else "?"


def shorter_than_header(ds: Dataset) -> bool:
    """Whether ``ds``'s native (uncompressed) pixel data holds fewer bytes than its header says
    (``apps.imaging.dicom.native_pixel_bytes``): Rows and Columns that do not match it, a frame
    missing. Measures a value left in the file there; reads one in memory."""
    tsuid = pydicom.uid.UID(transfer_syntax_of(ds))
    # a private or unknown transfer syntax is not measured (pydicom's is_compressed raises for it)
    if not tsuid or not tsuid.is_transfer_syntax or tsuid.is_compressed:
        return False
    in_file = _pixel_value(ds)
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            try:
                # a value left in the file is measured there, not read whole for it
                held = in_file.held if in_file is not None and in_file.keyword == keyword else len(
                    ds[keyword].value or b"")
            except PASSED_ON:
                raise
            except Exception:  # noqa: BLE001 - a value pydicom cannot read: not measured
                return False
            expected = dicom_native_pixel_bytes(ds, pydicom.tag.Tag(keyword))
            return expected is not None and held < expected
    return False


def undecodable_reason(ds: Dataset, exc: BaseException) -> Deferred:
    """Why the pixels of ``ds`` could not be decoded (``exc``, from pydicom or a codec), in words a
    reader can act on, never the exception's type or text (which may quote the file): data shorter
    than the header says, a compression no installed decoder takes (by its name), else damaged."""
    if shorter_than_header(ds):
        return Deferred(gettext_noop("The image data in this file is shorter than its header says: it cannot be "
                                     "shown."))
    if isinstance(exc, NotImplementedError | RuntimeError) and "plugin" in str(exc).lower():
        tsuid = transfer_syntax_of(ds)
        return Deferred(gettext_noop("This file's compression (%(name)s) cannot be decoded here."),
                        name=transfer_syntax_name(tsuid))
    return Deferred(gettext_noop("The image data in this file is damaged or in an unsupported form."))


def _modality(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """The Modality LUT applied to stored values. Rescale Slope/Intercept is applied here in one
    float32 copy (pydicom's ``apply_modality_lut`` makes a float64 one, 8 bytes a pixel for 8-bit
    data, which ``to_8bit`` then copied again to float32: the same values, as the window is computed
    in float32). A Modality LUT Sequence, float pixel data, and a rescale whose values would not
    fit in float32 are left to pydicom as before."""
    stored_integers = arr.dtype.kind in "iu"
    # float32 holds 8- and 16-bit stored values exactly; 32-bit ones above 2**24 it rounds before
    # the rescale, which an intercept near them then shows (grey levels off, a "diagnostic" image
    # wrong): those are rescaled by pydicom in float64, as before
    if (stored_integers and arr.dtype.itemsize <= 2 and "ModalityLUTSequence" not in ds
            and "RescaleSlope" in ds and "RescaleIntercept" in ds):
        try:
            slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        except (TypeError, ValueError):  # several values or none: pydicom's way, as before
            slope = intercept = float("nan")
        ends = (float(arr.min()) * slope, float(arr.max()) * slope) if arr.size else (0.0, 0.0)
        if all(np.isfinite(v) and abs(v) < 1e37 for v in (slope, intercept, *ends)):
            return _rescaled(arr, slope, intercept)  # finite: every value is below float32's largest
    out = apply_modality_lut(arr, ds)
    # a Rescale Slope or Intercept of NaN or infinity (or one that overflows) turns every value
    # into one that is not a number: a blank image, not this file's
    if stored_integers and out.dtype.kind == "f" and not np.isfinite(out).all():
        raise ValueError("rescaled values are not finite")
    return out


def _rescaled(arr: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    out = arr.astype(np.float32)
    np.multiply(out, np.float32(slope), out=out)
    np.add(out, np.float32(intercept), out=out)
    return out


def _palette_rgb(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Palette indices as 8-bit RGB. pydicom's ``apply_color_lut`` reads 16-bit (OW) LUT data in
    the machine's byte order whatever the file's, so a big-endian file's palette (pydicom's
    OBXXXX1A_expb.dcm) came out byte-swapped and the image black; segmented LUTs it reads right.

    16-bit entries are shown by their top 8 bits, but for 8-bit entries each stored in 16 bits, as
    some writers do (the LUT Descriptor says 8 and no entry is above 255), whose top 8 bits, all 0,
    were shown: a black image. A descriptor that says 8 over full 16-bit entries is wrong, as
    other viewers take it (cornerstone's "incorrect LUT descriptor").

    The palette is looked up once for every value the pixels' type can hold (256 or 65536), and
    that small table, made 8-bit, indexes the frame: its RGB is made once, in 8 bits, not first
    in 16 bits (6 bytes a pixel) and then shifted and copied.

    A palette with an Alpha Palette Color Lookup Table (``apply_color_lut`` then gives RGBA) is
    composited on black (``_on_black``)."""
    if arr.dtype.kind in "iu" and arr.dtype.itemsize <= 2:
        unsigned = np.dtype(f"{arr.dtype.byteorder}u{arr.dtype.itemsize}")
        every = np.arange(2 ** (8 * arr.dtype.itemsize), dtype=np.uint32).astype(unsigned).view(arr.dtype)
        return _on_black(_palette_8bit(apply_color_lut(every, ds), ds))[arr.view(unsigned)]
    return _on_black(_palette_8bit(apply_color_lut(arr, ds), ds))


def _on_black(rgb: np.ndarray) -> np.ndarray:
    """8-bit RGBA palette entries as RGB composited on black, RGB as it is. An Alpha table gave
    4 channels where every consumer takes (H, W, 3): the diagnostic PNG was written as RGB over
    RGBA rows (a garbled image) and the preview and education copies failed. Its alpha is the
    entry's opacity (0 fully transparent, PS3.3 C.7.9): an entry is shown as it would be over the
    viewer's black background, not at full strength as dropping the alpha would show what the
    file says is transparent (a label map's background, a translucent label)."""
    if rgb.ndim < 2 or rgb.shape[-1] != 4:
        return rgb
    alpha = rgb[..., 3:].astype(np.uint16)
    return ((rgb[..., :3] * alpha + 127) // 255).astype(np.uint8)


def _palette_8bit(rgb: np.ndarray, ds: Dataset) -> np.ndarray:
    if rgb.dtype != np.uint16:
        return rgb
    shift = 8
    if "RedPaletteColorLookupTableData" in ds:
        order = ">u2" if ds.original_encoding[1] is False else "<u2"
        if order == ">u2":
            rgb = rgb.byteswap()
        tables = [np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, dtype=order)
                  for c in ("Red", "Green", "Blue")]
        if int(ds.RedPaletteColorLookupTableDescriptor[2]) == 8 and max(int(t.max()) for t in tables) <= 255:
            shift = 0
    return (rgb >> shift).astype(np.uint8)


def load_frame(src: Any, index: int = 0) -> DecodedFrame:
    """Decode frame ``index`` (0-based) of ``src`` with its header facts, from one read. Its
    ``info.lossy`` is also true when this frame's JPEG 2000 codestream is irreversible.

    Raises ``UndecodableFrame`` (never anything else for bad files)."""
    with _opened(src) as fh, _read_header(fh) as ds:
        info = _info(ds)
        arr = _decode(fh, ds, info, index)
        if not info.lossy and irreversibly_coded(ds, [index]):
            info = replace(info, lossy=True)
        return DecodedFrame(pixels=arr, info=info, index=index)


def decode_frame(src: Any, index: int = 0) -> np.ndarray:
    """Frame ``index`` in modality values (monochrome) or as RGB (colour); see module docstring."""
    return load_frame(src, index).pixels


def _range_window(arr: np.ndarray) -> tuple[float, float]:
    """The window spanning the frame's values: its finite ones (float pixel data, a parametric map,
    may hold NaN or infinities, which made the window NaN and the whole image black)."""
    if arr.dtype.kind == "f" and not (finite := np.isfinite(arr)).all():
        arr = arr[finite]  # a copy only of a frame that holds such values
        if not arr.size:
            return 0.0, 1.0
    low, high = float(np.min(arr)), float(np.max(arr))
    return (low + high) / 2.0, max(high - low, 1.0)


def window_for(frame: DecodedFrame) -> tuple[float, float]:
    """The default window of an already decoded frame (file, modality default, value range)."""
    if frame.info.window:
        return frame.info.window
    if frame.info.modality in MODALITY_DEFAULTS:
        return MODALITY_DEFAULTS[frame.info.modality]
    return _range_window(frame.pixels)


def default_window(src: Any) -> tuple[float, float]:
    """(center, width): the file's first WindowCenter/Width, else the modality default, else the
    value range of frame 0."""
    info = frame_info(src)
    if info.window:
        return info.window
    if info.modality in MODALITY_DEFAULTS:
        return MODALITY_DEFAULTS[info.modality]
    return _range_window(decode_frame(src, 0))


def to_8bit(array: np.ndarray, center: float, width: float, invert: bool = False, *,
            overwrite: bool = False) -> np.ndarray:
    """Map modality values to 0..255 with the DICOM linear VOI function (PS3.3 C.11.2.1.2.1).

    Colour (H, W, 3) arrays are not windowed: 8-bit data is kept, wider data is scaled to 8 bits.
    ``overwrite=True``: ``array`` is not used afterwards, and a float32 or 8-bit colour one is
    windowed or inverted in place, not copied (a frame's 4 bytes a pixel, not 8 or more)."""
    if array.ndim == 3 and array.shape[-1] == 3:
        out = array if array.dtype == np.uint8 else _scale_colour(array)
        if not invert:
            return out
        return np.subtract(255, out, out=out) if out is not array or (overwrite and out.flags.writeable) else 255 - out
    width = max(float(width), 1.0)
    low = float(center) - 0.5 - (width - 1.0) / 2.0
    scale = 255.0 / max(width - 1.0, 1e-6)
    # one float32 working array, computed in place: ``array`` itself when it may be overwritten
    values = array if overwrite and array.dtype == np.float32 and array.flags.writeable else array.astype(np.float32)
    np.subtract(values, np.float32(low), out=values)
    np.multiply(values, np.float32(scale), out=values)
    # infinities to 0 and 255, and no value (NaN) shows black, as the lowest: fmax and fmin take
    # the number over NaN (np.clip keeps NaN, and np.nan_to_num makes three masks of the frame)
    np.fmax(values, np.float32(0.0), out=values)
    np.fmin(values, np.float32(255.0), out=values)
    np.add(values, np.float32(0.5), out=values)
    out = values.astype(np.uint8)
    del values
    return np.subtract(255, out, out=out) if invert else out


def _scale_colour(array: np.ndarray) -> np.ndarray:
    peak = float(np.max(array)) or 1.0
    values = array.astype(np.float32)
    np.multiply(values, np.float32(255.0 / peak), out=values)
    return np.clip(values, 0, 255, out=values).astype(np.uint8)


def image_from(frame: DecodedFrame, *, center: float | None = None, width: float | None = None,
               invert: bool | None = None, max_size: int | None = None, consume: bool = False) -> Image.Image:
    """A PIL image of an already decoded frame (see ``render_frame``). ``consume=True``: the
    caller has no further use for ``frame.pixels``' values, which are then overwritten (its shape
    stays), so that the 8-bit image is made without another copy of the frame."""
    if center is None or width is None:
        default_center, default_width = window_for(frame)
        center = default_center if center is None else center
        width = default_width if width is None else width
    flip = frame.info.invert if invert is None else (invert != frame.info.invert)
    data = to_8bit(frame.pixels, center, width, invert=flip, overwrite=consume)
    image = Image.fromarray(np.ascontiguousarray(data), mode=None)
    if max_size and max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.BILINEAR)
    return image


def render_frame(src: Any, index: int = 0, *, center: float | None = None, width: float | None = None,
                 invert: bool | None = None, max_size: int | None = None) -> Image.Image:
    """Frame ``index`` of ``src`` as an 8-bit PIL image ("L" or "RGB").

    ``center``/``width`` default to ``default_window``; ``invert=None`` shows MONOCHROME1 like
    MONOCHROME2, ``True`` inverts the display relative to that; ``max_size`` shrinks (never
    enlarges) so that the longer side is at most that many pixels. Raises ``UndecodableFrame``."""
    return image_from(load_frame(src, index), center=center, width=width, invert=invert, max_size=max_size,
                      consume=True)
