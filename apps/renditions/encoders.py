"""Making the files of each rendition kind from one original DICOM file (bytes in, bytes out).

No database here: ``apps.renditions.services`` stores what these return. Pixels are decoded,
windowed and scaled by ``apps.imaging.pixels`` (the one pixel mechanism); encoding to DICOM
transfer syntaxes goes through pydicom's encoders (pyjpegls, pylibjpeg-openjpeg, RLE).

- ``lossless_encode(data, codec)``: the original re-encoded losslessly, returned only after a
  decode of the result proved every pixel identical to the original's; else ``NotEncodable``.
  ``lossless_encode_first(data, codecs)``: the same with the first codec that makes a copy, the
  original read and decoded once for them all (and each copy decoded once: ``_decoded``).
- ``preview_jpeg(data, frame)``: a lossy JPEG of at most 1024 px, window from the file or the
  modality default, with a burned-in "PREVIEW - NOT FOR DIAGNOSTIC USE" band.
- ``education_dicom(data, frame)``: a low-resolution (at most 512 px) lossy DICOM of one key
  image, marked as PS3.3 asks of a lossy derived image: Lossy Image Compression (0028,2110) = 01
  with its Ratio and Method, Image Type DERIVED, a new SOP Instance UID.
- ``education_export(data, frame)``: that DICOM and, from the same decoded pixels, the JPEG the
  patient's education zip holds (a phone opens it, a DICOM file it cannot): the same image with a
  burned-in "EDUCATION COPY - NOT FOR DIAGNOSIS" band, and nothing else (no metadata, so no
  patient identifier).

A band's text is always whole and legible (``_legible``, ``_band_layout``): an image narrower than
``BAND_MIN_WIDTH`` is enlarged first (within its kind's maximum; the education DICOM holds the
same enlarged picture and says so in its Derivation Description), a text that does not fit on one
line at ``BAND_MIN_FONT`` px is wrapped, and a strip too thin even so gets black borders.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import logging
import math
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import pydicom
from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.utils.translation import gettext_noop
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from apps.core.i18n import Deferred
from apps.imaging import dicom, j2k, pixels
from apps.imaging.storage import STORAGE_ERRORS

#: lossless codecs, in the order tried for the stored lossless rendition
LOSSLESS_CODECS: dict[str, pydicom.uid.UID] = {
    "jpeg-ls": JPEGLSLossless,
    "jpeg2000": JPEG2000Lossless,
    "rle": RLELossless,
}
PREVIEW_MAX = 1024
EDUCATION_MAX = 512
PREVIEW_QUALITY = 80
EDUCATION_QUALITY = 85
BAND_TEXT = "PREVIEW - NOT FOR DIAGNOSTIC USE"
#: burned into the education copy's JPEG images. One fixed text, not translated (as the preview's
#: band): the picture is made once, stored, and is the same bytes for every asker (patient,
#: clinician, any language), which a package's ETag and resumed (Range) downloads rely on; a band
#: per language would be a stored image per language. The zip's README quotes it and says what it
#: means in the asker's language (``packages._readme``).
EDUCATION_BAND_TEXT = "EDUCATION COPY - NOT FOR DIAGNOSIS"
#: the smallest font (px) a band is drawn in; an image too small for its band text at that size is
#: enlarged (or, a strip, bordered) first: ``_legible``
BAND_MIN_FONT = 8
#: an image narrower than this is enlarged before its band is drawn (its longer side staying
#: within its rendition's maximum), so that a 64 px picture is not a stamp and its label readable
BAND_MIN_WIDTH = 256
#: UID root for derived objects (the generate_uid default root, with our own entropy sources)
_EDUCATION_ENTROPY = "lightbox-education-v1"

#: values over this many bytes are left in the file while a stored original is read as a stream
#: (``_streamed``): the pixel data above all, read a frame at a time if at all (as ``pixels`` does)
STREAM_DEFER_SIZE = 256
#: the pixel data elements (Pixel Data, Float and Double Float Pixel Data)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)

logger = logging.getLogger(__name__)


class NotEncodable(Exception):
    """This file cannot be made into this rendition; ``reason`` is short, safe to show, and
    holds no patient data."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SourceFacts:
    lossy: bool              # pixels.header_lossy, or a JPEG 2000 frame coded irreversibly
    identity_removed: bool   # Patient Identity Removed (0012,0062) = YES, and true (``identity_verified``)
    transfer_syntax_uid: str


@contextlib.contextmanager
def _reading_dicom(*passed_on: type[Exception]) -> Iterator[None]:
    """Reads an original's data set within the ``with``: a file pydicom cannot read, or one whose
    deflated data set inflates over the limit, raises ``NotEncodable`` with the reason; exceptions
    of the ``passed_on`` types (the storage failing) are raised as they are."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except passed_on:
        raise
    except dicom.InflateLimit as exc:
        raise NotEncodable(Deferred(gettext_noop(
            "The original's deflated (compressed) data set inflates to more than %(limit)s MB, over this portal's "
            "limit for one file."), limit=exc.limit_mb)) from exc
    except Exception as exc:  # pydicom raises many types on damaged files
        raise NotEncodable(Deferred(gettext_noop("The file cannot be read as DICOM."))) from exc


def _read(data: bytes, *, stop_before_pixels: bool = False) -> Dataset:
    # a deflated data set: inflated within bounds (pydicom inflates it whole, however large)
    with _reading_dicom():
        return dicom.read_whole(io.BytesIO(data), force=True, stop_before_pixels=stop_before_pixels)


def _source(source: bytes | IO[bytes]) -> IO[bytes]:
    """A binary file over ``source``: its bytes, or a seekable file (a blob being decrypted) as it is."""
    return io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source


@contextlib.contextmanager
def _streamed(source: bytes | IO[bytes], *, stop_before_pixels: bool = False) -> Iterator[Dataset]:
    """The data set of ``source`` (bytes, or a seekable binary file read from its start) for the
    ``with``, its values over ``STREAM_DEFER_SIZE`` left in the file until read: a stored original is
    never held whole (pixel data included, encapsulated or not); a deflated data set is inflated
    within bounds (``dicom.read``). The file's storage failing is raised as it is (the caller
    retries, a download fails), never taken for a damaged file."""
    fh = _source(source)
    fh.seek(0)
    with contextlib.ExitStack() as stack:
        with _reading_dicom(*STORAGE_ERRORS, InvalidTag):
            ds = stack.enter_context(dicom.read(fh, force=True, stop_before_pixels=stop_before_pixels,
                                                defer_size=STREAM_DEFER_SIZE))
        if getattr(ds, "buffer", None) is None and getattr(ds, "filename", None):
            ds.buffer = fh  # deferred values are read from this stream, never by the file's "name"
        yield ds


def source_facts(source: bytes | IO[bytes]) -> SourceFacts:
    """What the renditions of an original need to know of it. ``source``: its bytes, or a seekable
    binary file (``open_blob``), read as a stream: the header, then, only for a JPEG 2000 file the
    header does not already call lossy or one that says its identity was removed, the rest of
    the data set with the pixel data left in the file (the codestreams read a frame at a time,
    ``pixels.irreversibly_coded``). Memory stays within a small bound whatever the file's size."""
    with _streamed(source, stop_before_pixels=True) as header:
        tsuid = pixels.transfer_syntax_of(header)
        lossy = pixels.header_lossy(header)
        claims_removed = _claims_identity_removed(header)
    identity_removed = False
    if claims_removed or (not lossy and tsuid in j2k.TRANSFER_SYNTAXES):
        with _streamed(source) as ds:
            lossy = lossy or (tsuid in j2k.TRANSFER_SYNTAXES and pixels.irreversibly_coded(ds))
            identity_removed = claims_removed and identity_verified(ds)
    return SourceFacts(lossy=lossy, identity_removed=identity_removed, transfer_syntax_uid=tsuid)


def _claims_identity_removed(ds: Dataset) -> bool:
    return str(ds.get("PatientIdentityRemoved") or "").strip().upper() == "YES"


def identity_verified(ds: Dataset) -> bool:
    """Whether the file says Patient Identity Removed (0012,0062) = YES and it is so, as the
    de-identification profile would let it leave (``apps.deid.profile.deidentified``): nothing
    the profile would remove, empty or replace is left in it (its table and safety net; the whole
    data set is read, as attributes may follow the pixel data), nothing that would exclude it
    (burned-in text said or likely, a secondary or screen-saved image, video, a photograph, a
    document), and it does not say it kept the original's UIDs. A package is named ``_DeID`` and
    its manifest says "De-identified: yes" on this, so the claim alone is not enough: a file saying
    YES that still names its patient (or carries a pseudonym, which cannot be told from a name), or
    whose pixels may, is not de-identified here.

    ``ds``: the whole data set (``_streamed``); its pixel data, which the profile's check only
    asks the presence of, is replaced by an empty value of its VR first, never read (the check
    reads every other value, so a pixel data left in the file would be read whole)."""
    from apps.deid.profile import deidentified

    if not _claims_identity_removed(ds):
        return False
    for tag in _PIXEL_TAGS:
        if tag in ds:
            ds[tag] = DataElement(tag, ds.get_item(tag, keep_deferred=True).VR or "OB", b"")
    return deidentified(ds)


def _logged(exc: BaseException, what: str) -> BaseException:
    """Log ``exc``'s type (at info, for a developer) and return it. A reason shown to users names
    neither the type (a Python name says nothing to them) nor the message (a library's may quote
    the file's values: pydicom's "invalid literal for int() with base 10: '...'" quotes a header
    value, which may be the patient's name in a damaged file)."""
    logger.info("renditions: %s (%s)", what, type(exc).__name__)
    return exc


def _pixels_of(ds: Dataset) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds.pixel_array


def _unused_bits_hold_data(ds: Dataset) -> bool:
    """Whether a sample of ``ds`` has bits above Bits Stored that are not padding (zeros, or a
    signed sample's sign repeated): an overlay drawn in the pixel data's high bits (retired, found
    in old files), or anything else there. ``pixel_array`` clears those bits (or repeats the sign
    in them) and a compressed copy is encoded from it at Bits Stored's precision: they would be
    lost, and checking the copy against ``pixel_array`` would not see it. Decoded as stored
    (``correct_unused_bits=False``), only when Bits Allocated exceeds Bits Stored."""
    raw = _as_stored(ds)
    return raw is not None and _high_bits_hold_data(ds, raw)


def _as_stored(ds: Dataset) -> np.ndarray | None:
    """``ds``'s samples decoded as stored (bits above Bits Stored kept, no colour conversion), or
    None when Bits Allocated does not exceed Bits Stored (no such bits) or there is no pixel data."""
    allocated, stored = int(ds.get("BitsAllocated") or 0), int(ds.get("BitsStored") or 0)
    if "PixelData" not in ds or not 0 < stored < allocated:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw, _meta = get_decoder(pydicom.uid.UID(pixels.transfer_syntax_of(ds))).as_array(
            ds, correct_unused_bits=False, as_rgb=False)
    return raw


def _high_bits_hold_data(ds: Dataset, raw: np.ndarray) -> bool:
    """``_unused_bits_hold_data`` of the samples ``raw`` (``_as_stored``) of ``ds``."""
    stored = int(ds.get("BitsStored") or 0)
    if raw.dtype.kind not in "iu":
        return False
    container = raw.dtype.itemsize * 8
    if stored >= container:
        return False
    samples = raw.view(f"u{raw.dtype.itemsize}")
    high = samples >> stored
    padding = high == 0
    if int(ds.get("PixelRepresentation") or 0) == 1:  # or the sign bit repeated in every bit above it
        padding |= (high == (1 << (container - stored)) - 1) & ((samples >> (stored - 1)) & 1 == 1)
    return not bool(padding.all())


#: photometric interpretations ``pixel_array`` converts (to RGB): its pixels are not the samples
#: as stored with their unused bits cleared, so ``_decoded`` decodes them apart
_CONVERTED_COLOURS = ("YBR_FULL", "YBR_FULL_422")


def _bits_kept(ds: Dataset) -> bool:
    """Whether ``pixel_array`` gives ``ds``'s samples with the bits above Bits Stored as decoded:
    pydicom clears them (``correct_unused_bits``) by default for every transfer syntax but JPEG
    2000 and JPEG-LS, whose decoders give samples of the codestream's own precision (a sign it
    corrects instead, where it must, in both decodings alike)."""
    tsuid = pixels.transfer_syntax_of(ds)
    return tsuid in pydicom.uid.JPEG2000TransferSyntaxes or tsuid in pydicom.uid.JPEGLSTransferSyntaxes


def _decoded(ds: Dataset) -> tuple[np.ndarray, bool]:
    """``ds``'s pixels as ``pixel_array`` gives them, and ``_unused_bits_hold_data(ds)``, from
    one decoding: decoding an encapsulated copy twice, once for each, took most of a 12-bit CT
    slice's lossless time. The samples are decoded as stored (``_as_stored``: what pydicom decodes
    before it clears unused bits), their high bits checked, then cleared (or the sign repeated in
    them) as ``pixel_array`` does (``_bits_kept``: unless it leaves them): shifted left, then
    right, by Bits Allocated - Bits Stored in the samples' own integer type (an arithmetic shift
    for signed samples), as pydicom's own correction. Pixels ``pixel_array`` converts (YBR
    colour), and samples not in an integer type of Bits Allocated bits, are decoded twice.
    tests/renditions/test_lossless_decoded_once.py holds it to the two decodings' answers."""
    allocated, stored = int(ds.get("BitsAllocated") or 0), int(ds.get("BitsStored") or 0)
    if (not 0 < stored < allocated or "PixelData" not in ds
            or str(ds.get("PhotometricInterpretation") or "").strip() in _CONVERTED_COLOURS):
        return _pixels_of(ds), _unused_bits_hold_data(ds)
    raw = _as_stored(ds)
    if raw is None or raw.dtype.kind not in "iu" or raw.dtype.itemsize * 8 != allocated:
        return _pixels_of(ds), _unused_bits_hold_data(ds)
    high_bits = _high_bits_hold_data(ds, raw)
    if _bits_kept(ds):
        return raw, high_bits
    corrected = raw if raw.flags.writeable else raw.copy()
    shift = allocated - stored
    np.left_shift(corrected, shift, out=corrected)
    np.right_shift(corrected, shift, out=corrected)
    return corrected, high_bits


def lossless_encode(data: bytes, codec: str) -> bytes:
    """``data`` (a DICOM file) re-encoded with ``codec`` (a LOSSLESS_CODECS key), verified.

    Raises NotEncodable with the reason when the file has no pixel data, is already lossy
    (a lossless copy of a lossy image would not be diagnostic-grade), is in a colour model the
    frames are refused for (``pixels.check_colour_model``), cannot be decoded, holds data in the
    bits above Bits Stored (``_unused_bits_hold_data``), cannot be encoded by the codec, or when
    the decoded result differs from the original in any pixel."""
    return _lossless_copy(_lossless_source(data), LOSSLESS_CODECS[codec])


def lossless_encode_first(data: bytes, codecs: Iterable[str]) -> tuple[str, bytes]:
    """``data`` re-encoded, verified, with the first of ``codecs`` (LOSSLESS_CODECS keys, in the
    order tried) that makes a copy: (that codec, the file's bytes), as ``lossless_encode`` with
    each in turn would give. The original is read, checked and decoded once for them all (it was
    once per codec tried: an original refused for what it is, lossy, undecodable or too large,
    was refused three times over, and one already in the first codec decoded twice); it is read
    again only for a codec tried after another's copy failed (``_lossless_copy`` encodes from its
    data set). Raises NotEncodable with the distinct reasons, in the order met, when none does."""
    reasons: list[str] = []
    source: _LosslessSource | None = None
    for codec in codecs:
        target = LOSSLESS_CODECS[codec]
        try:
            if source is None:
                source = _lossless_source(data)
            if source.tsuid == target:
                _lossless_copy(source, target)  # refused, nothing changed: the source serves the next codec
            used, source = source, None  # its data set is changed by the encoding: read again for another
            return codec, _lossless_copy(used, target)
        except _RefusedOriginal as exc:  # the same reason for every codec
            if exc.reason not in reasons:
                reasons.append(exc.reason)
            break
        except NotEncodable as exc:
            if exc.reason not in reasons:
                reasons.append(exc.reason)
    raise NotEncodable(Deferred.join(reasons))


@dataclass
class _LosslessSource:
    """An original checked and decoded for a lossless copy (``_lossless_source``)."""
    ds: Dataset              # its data set, uncompressed: the copy is encoded from it
    original: np.ndarray     # its pixels, as ``pixel_array`` gives them
    tsuid: str               # its transfer syntax as received


class _RefusedOriginal(NotEncodable):
    """The original itself cannot have a lossless copy, whatever the codec."""


def _lossless_source(data: bytes) -> _LosslessSource:
    """``data`` read, checked and decoded for a lossless copy; raises ``_RefusedOriginal`` (a
    NotEncodable) with the reason when no codec can copy it (``lossless_encode``)."""
    try:
        ds = _read(data)
    except NotEncodable as exc:
        raise _RefusedOriginal(exc.reason) from exc
    if "PixelData" not in ds:
        raise _RefusedOriginal(Deferred(gettext_noop("No (integer) pixel data to compress.")))
    tsuid = pixels.transfer_syntax_of(ds)
    if pixels.header_lossy(ds) or pixels.irreversibly_coded(ds):
        raise _RefusedOriginal(Deferred(gettext_noop(
            "The original is already lossy-compressed: a lossless copy would not be diagnostic-grade.")))
    if ds.original_encoding[1] is False:
        # pydicom writes a big-endian dataset little-endian only with every OW/OF/OL/OD/UN value
        # (a palette, an overlay, a LUT) byte-swapped by hand; unswapped, the copy would decode to
        # the same pixel values and still show wrong, which the check below would not see
        raise _RefusedOriginal(Deferred(gettext_noop(
            "The original is big-endian (a retired transfer syntax): no lossless copy is made of it.")))
    try:
        # samples in a colour model not shown here: the copy is refused by the frames' reason
        pixels.check_colour_model(ds)
        # the whole object is decoded at once (below): refused before, when it is too large for that
        pixels.check_decoded_size(ds, frames=pixels.frames_of(ds), limit=settings.LIGHTBOX_MAX_OBJECT_BYTES,
                                  reason=gettext_noop(
            "The original is too large for a lossless copy here: its pixels take %(size)s MB decoded, over this "
            "portal's limit of %(limit)s MB."))
    except pixels.UndecodableFrame as exc:
        raise _RefusedOriginal(exc.reason) from exc
    try:
        high_bits = None
        if tsuid and pydicom.uid.UID(tsuid).is_compressed:
            # decoded once, its samples kept as stored (``_decoded`` reads their high bits from the
            # result); a colour image pydicom converts is checked before, as decompress() converts it
            as_stored = str(ds.get("PhotometricInterpretation") or "").strip() not in _CONVERTED_COLOURS
            if not as_stored:
                high_bits = _unused_bits_hold_data(ds)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.decompress(generate_instance_uid=False, correct_unused_bits=not as_stored)
        original, native_high_bits = _decoded(ds)
        high_bits = native_high_bits if high_bits is None else high_bits
    except Exception as exc:
        raise _RefusedOriginal(pixels.undecodable_reason(ds, _logged(exc, "original not decoded"))) from exc
    if high_bits:
        raise _RefusedOriginal(Deferred(gettext_noop(
            "The original keeps data in the bits above Bits Stored (such as an overlay drawn in the pixel data), "
            "which a compressed copy would lose: no lossless copy is made of it.")))
    return _LosslessSource(ds=ds, original=original, tsuid=tsuid)


def _lossless_copy(source: _LosslessSource, target: pydicom.uid.UID) -> bytes:
    """The copy of ``source`` in ``target``, returned only once its one decoding gave every pixel
    of the original back (``_decoded``); NotEncodable with the reason otherwise. Encoding changes
    ``source.ds`` (not when refused for being in ``target`` already)."""
    ds, original = source.ds, source.original
    if source.tsuid == target:
        raise NotEncodable(Deferred(gettext_noop("The original is already %(codec)s."), codec=target.name))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.compress(target, original, generate_instance_uid=False)  # same image: same UID
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
    except Exception as exc:
        _logged(exc, f"not encoded as {target.name}")
        raise NotEncodable(Deferred(gettext_noop("%(codec)s cannot encode this image."), codec=target.name)) from exc
    encoded = out.getvalue()
    try:
        copy = _read(encoded)
        decoded, copy_high_bits = _decoded(copy)  # one decoding of the copy
    except Exception as exc:
        _logged(exc, f"{target.name} copy not decoded back")
        raise NotEncodable(Deferred(gettext_noop("The %(codec)s copy cannot be decoded back."),
                                    codec=target.name)) from exc
    if copy_high_bits or decoded.shape != original.shape or not np.array_equal(decoded, original):
        raise NotEncodable(Deferred(gettext_noop("The %(codec)s copy does not decode to the original pixels."),
                                    codec=target.name))
    return encoded


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class _BandLayout:
    lines: tuple[str, ...]
    size: int     # font size (px)
    height: int   # the band's height (px)


def _widest(lines: tuple[str, ...], size: int) -> float:
    return max(_font(size).getlength(line) for line in lines)


def _wrappings(text: str) -> Iterator[tuple[str, ...]]:
    """``text`` over 2, 3, ... lines (one word a line at most; a dash stays at the end of the line
    before it), each the split whose widest line is the narrowest."""
    words = re.findall(r"\S+(?: -+(?= |$))?", text)  # "COPY -" is one word
    probe = _font(100)
    for count in range(2, len(words) + 1):
        splits = (tuple(" ".join(words[a:b]) for a, b in zip((0, *cuts), (*cuts, len(words)), strict=True))
                  for cuts in itertools.combinations(range(1, len(words)), count - 1))
        yield min(splits, key=lambda lines: max(probe.getlength(line) for line in lines))


def _band_layout(width: int, height: int, text: str) -> _BandLayout | None:
    """How ``text`` is drawn across the bottom of a ``width`` x ``height`` image: on one line when
    it fits there at ``BAND_MIN_FONT`` px or more (as always: the band is 7% of the height, the
    text 94% of the width at most), else wrapped over as few lines as fit at that size, the band
    made as tall as they need. None when even one word a line does not fit (``_legible`` widens
    the image first)."""
    base = max(8, round(height * 0.07))
    cap = int(base * 0.7)
    room = width * 0.94
    size = min(cap, int(100 * room / max(_font(100).getlength(text), 1)))
    while size >= BAND_MIN_FONT and _font(size).getlength(text) > width:  # the estimate is linear, glyphs are not
        size -= 1
    if size >= BAND_MIN_FONT:
        return _BandLayout((text,), size, base)
    if _font(BAND_MIN_FONT).getlength(text) <= room:  # fits on one line, in a band taller than 7%
        size = BAND_MIN_FONT
        return _BandLayout((text,), size, max(base, size + 2 * _pad(size)))
    for lines in _wrappings(text):
        if _widest(lines, BAND_MIN_FONT) > room:
            continue
        size = BAND_MIN_FONT
        while size < max(cap, BAND_MIN_FONT) and _widest(lines, size + 1) <= room:
            size += 1
        return _BandLayout(lines, size, max(base, len(lines) * _line_height(size) + 2 * _pad(size)))
    return None


def _line_height(size: int) -> int:
    return round(size * 1.25)


def _pad(size: int) -> int:
    return max(2, round(size * 0.25))


def _legible(image: Image.Image, max_size: int, text: str) -> tuple[Image.Image, str]:
    """``image`` made to hold its band ``text`` whole and legible (``_band_layout``): enlarged
    when narrower than ``BAND_MIN_WIDTH`` px, its longer side staying at most ``max_size``; then,
    only for a strip too narrow or too short even so, black borders added (at the sides, or
    below) so that the text fits and the band covers at most half of it. Returns the image and
    what was done to it ("" when nothing: the image as given, as before for any image 256 px
    wide or more)."""
    done = ""
    width, height = image.size
    if width < BAND_MIN_WIDTH:
        factor = min(BAND_MIN_WIDTH / width, max_size / max(width, height))
        if factor > 1:
            image = image.resize((max(1, round(width * factor)), max(1, round(height * factor))),
                                 Image.Resampling.BICUBIC)
            done = "enlarged"
    width, height = image.size
    layout = _band_layout(width, height, text)
    if layout is None:
        width = max(width, math.ceil(max(_font(BAND_MIN_FONT).getlength(w) for w in text.split()) / 0.94) + 2)
        layout = _band_layout(width, height, text)
    if layout is not None and layout.height * 2 > height:
        height = layout.height * 2
    if (width, height) != image.size:
        canvas = Image.new(image.mode, (width, height), 0 if image.mode == "L" else (0, 0, 0))
        canvas.paste(image, ((width - image.size[0]) // 2, 0))
        image, done = canvas, (f"{done} and bordered" if done else "bordered")
    return image, done


def _band(image: Image.Image, text: str) -> Image.Image:
    """Burn a black band with white ``text`` across the bottom of ``image`` (in place), laid out
    by ``_band_layout`` (an image given to ``_legible`` first always has room for the whole text)."""
    width, height = image.size
    layout = _band_layout(width, height, text) or _BandLayout((text,), BAND_MIN_FONT, max(8, round(height * 0.07)))
    band = layout.height
    draw = ImageDraw.Draw(image)
    white = 255 if image.mode == "L" else (255, 255, 255)
    draw.rectangle([0, height - band, width, height], fill=0 if image.mode == "L" else (0, 0, 0))
    font = _font(layout.size)
    if len(layout.lines) == 1:
        top = height - band + (band - layout.size) / 2
    else:
        top = height - band + (band - len(layout.lines) * _line_height(layout.size)) / 2
    for index, line in enumerate(layout.lines):
        draw.text(((width - font.getlength(line)) / 2, top + index * _line_height(layout.size)), line, fill=white,
                  font=font)
    return image


def _frame_image(data: bytes | IO[bytes], frame: int, max_size: int) -> tuple[Image.Image, pixels.FrameInfo]:
    try:
        decoded = pixels.load_frame(_source(data), frame)  # reads that frame only
        return pixels.image_from(decoded, max_size=max_size, consume=True), decoded.info
    except pixels.UndecodableFrame as exc:
        raise NotEncodable(exc.reason) from exc


def _jpeg(image: Image.Image, quality: int, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, **kwargs)
    return out.getvalue()


def preview_jpeg(data: bytes, frame: int = 0) -> tuple[bytes, int, int]:
    """A labelled lossy preview of one frame: (JPEG bytes, columns, rows)."""
    image, _info = _frame_image(data, frame, PREVIEW_MAX)
    image, _done = _legible(image, PREVIEW_MAX, BAND_TEXT)
    _band(image, BAND_TEXT)
    return _jpeg(image, PREVIEW_QUALITY), image.size[0], image.size[1]


_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientIdentityRemoved",
           "DeidentificationMethod", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
           "StudyDescription", "ReferringPhysicianName", "Modality", "BodyPartExamined", "Laterality",
           "SeriesNumber", "InstanceNumber", "SpecificCharacterSet",
           # the pixels are the source's, scaled: what it says of text or faces in them holds here
           # too, and nothing is claimed when it says nothing
           "BurnedInAnnotation", "RecognizableVisualFeatures")


@dataclass(frozen=True)
class EducationExport:
    dicom: bytes      # the education file (``education_dicom``)
    jpeg: bytes       # the labelled JPEG image of the patient's zip: the same pixels, the band burned in
    columns: int
    rows: int


def _education_image(data: bytes | IO[bytes], frame: int) -> tuple[Image.Image, pixels.FrameInfo, str]:
    """The education picture of one frame (the DICOM's and the labelled JPEG's: the same pixels),
    made room for its band (``_legible``), and what that did to it."""
    image, info = _frame_image(data, frame, EDUCATION_MAX)
    image, done = _legible(image if image.mode == "L" else image.convert("RGB"), EDUCATION_MAX, EDUCATION_BAND_TEXT)
    return image, info, done


def _labelled_jpeg(image: Image.Image) -> bytes:
    return _jpeg(_band(image.copy(), EDUCATION_BAND_TEXT), EDUCATION_QUALITY)


def education_export(data: bytes, frame: int = 0) -> EducationExport:
    """The education DICOM of one frame and its labelled JPEG image, from one decoding. The JPEG
    is written by Pillow with no EXIF, comment or ICC profile: nothing in it but the pixels."""
    image, info, done = _education_image(data, frame)
    dcm, columns, rows = _education_dicom(data, frame, image, info, done)
    return EducationExport(dicom=dcm, jpeg=_labelled_jpeg(image), columns=columns, rows=rows)


def education_labelled_jpeg(data: bytes | IO[bytes], frame: int = 0) -> bytes:
    """Only the labelled JPEG image of ``education_export`` (for an education file made before
    the zip held images: ``services.education_images_ensure``). ``data``: the original's bytes,
    or a seekable binary file (``open_blob``) of which only the frame's bytes are read."""
    return _labelled_jpeg(_education_image(data, frame)[0])


def education_dicom(data: bytes, frame: int = 0) -> tuple[bytes, int, int]:
    """A low-resolution lossy DICOM (Secondary Capture, JPEG baseline) of one frame:
    (file bytes, columns, rows). Marked lossy, derived, with a new SOP Instance UID."""
    image, info, done = _education_image(data, frame)
    return _education_dicom(data, frame, image, info, done)


def _education_dicom(data: bytes, frame: int, image: Image.Image, info: pixels.FrameInfo,
                     done: str = "") -> tuple[bytes, int, int]:
    source = _read(data, stop_before_pixels=True)
    colour = image.mode != "L"
    jpeg = _jpeg(image, EDUCATION_QUALITY, subsampling=1 if colour else 0)  # 4:2:2 matches YBR_FULL_422
    columns, rows = image.size
    samples = 3 if colour else 1
    ratio = (rows * columns * samples) / len(jpeg)

    ds = Dataset()
    for keyword in _COPIED:
        if keyword in source:
            setattr(ds, keyword, source.data_element(keyword).value)
    src_sop = str(source.get("SOPInstanceUID") or "")
    src_series = str(source.get("SeriesInstanceUID") or "")
    ds.SOPClassUID = SecondaryCaptureImageStorage
    # deterministic: making the same export twice gives the same UIDs (idempotent task)
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[_EDUCATION_ENTROPY, src_sop, str(frame)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[_EDUCATION_ENTROPY, src_series])
    ds.SeriesDescription = "Patient education - low resolution"
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    # an image too small for its label was enlarged (or bordered) to hold it: said so
    scaled = f"{done} to {columns} x {rows} px" if done else f"reduced to at most {EDUCATION_MAX} px"
    ds.DerivationDescription = (f"Windowed to 8 bits, {scaled} and JPEG baseline "
                                "compressed for patient education; not for diagnostic use")
    ref = Dataset()
    ref.ReferencedSOPClassUID = str(source.get("SOPClassUID") or "")
    ref.ReferencedSOPInstanceUID = src_sop
    if info.frames > 1:
        ref.ReferencedFrameNumber = frame + 1
    ds.SourceImageSequence = [ref]
    # the compression history goes on (PS3.3 C.7.6.1.1.5): the source's steps, then this one
    previous_ratios = dicom.values(source.get("LossyImageCompressionRatio")) if info.lossy else []
    previous_methods = dicom.values(source.get("LossyImageCompressionMethod")) if info.lossy else []
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*previous_ratios, round(ratio, 2)]
    ds.LossyImageCompressionMethod = [*previous_methods, "ISO_10918_1"]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "YBR_FULL_422" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([jpeg])
    ds["PixelData"].VR = "OB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), columns, rows
