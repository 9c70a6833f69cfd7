"""DICOM parsing, kept out of the ORM: ``parse(fileobj)`` returns a frozen ``DicomHeader`` or
raises ``DicomError`` with a reason a person can act on. Pixel data is never read into memory:
pydicom stops before it, and completeness is checked from the pixel data element's header and
the file size. A deflated data set is inflated here, never past ``inflate_limit``, before pydicom
reads it (``read``); values over ``DEFER_SIZE`` are left in the file, not read."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import struct
import traceback
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import IO

import pydicom
import pydicom.config
import pydicom.dataelem
import pydicom.filereader
import pydicom.multival
from django.conf import settings
from django.utils.translation import gettext_noop
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID
from pydicom.valuerep import VR

from apps.core import spool
from apps.core.i18n import Deferred

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
DEFLATED = "1.2.840.10008.1.2.1.99"
PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
ITEM_TAG = (0xFFFE, 0xE000)  # an item of encapsulated pixel data (the offset table, a fragment)
SEQ_DELIMITER_TAG = (0xFFFE, 0xE0DD)  # the end of encapsulated pixel data
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
UID_MAX = 64  # characters, DICOM PS3.5 (UI) and the index's columns
#: what an identifying UID may hold once its trailing padding (NUL, space) is off: components
#: separated by dots (DICOM PS3.5 9.1), of digits, or of hexadecimal letters too, as hashing
#: anonymizers write them (pydicom's bad_sequence.dcm). Leading zeros are accepted (common in
#: archives); a space inside (pydicom strips those around a UI value), a control character, a
#: backslash (several values) or punctuation is not.
UID_COMPONENT = re.compile("[0-9A-Fa-f]+", re.ASCII)
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # the index's integer columns
US_MAX = 2**16 - 1  # Rows and Columns are unsigned shorts
SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
#: control characters (C0, DEL, C1): PostgreSQL refuses NUL in text, and none belongs in a
#: name, an identifier or a description (an ESC left behind is a charset pydicom could not decode)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: values longer than this are not read by the header parse (pydicom defers them: it notes where
#: they are and seeks past): an encapsulated PDF, a private blob of hundreds of MB would otherwise
#: be read whole into memory for nothing, as the index keeps none of them. A sequence of undefined
#: length is still read whole (pydicom defers no value inside one)
DEFER_SIZE = 1024 * 1024
#: a deflated data set is inflated into memory up to this (as ``sources.MEMORY_MAX``), past it
#: into a temporary file; read and inflated in chunks of INFLATE_CHUNK
INFLATE_MEMORY_MAX = 8 * 1024 * 1024
INFLATE_CHUNK = 1024 * 1024
#: the file meta information is looked at in the first bytes of a file (``_maybe_deflated``)
META_HEAD = 2048
DEFLATED_BYTES = DEFLATED.encode()
#: the VRs pydicom knows, as read in explicit VR (the file meta's encoding; LONG_VRS have a 4-byte length)
KNOWN_VRS = {vr.value.encode() for vr in VR if len(vr.value) == 2}


# Invalid values are reported by pydicom through logging, with the value in the message: a
# patient name could reach the logs. Lightbox reads leniently and reports per file instead.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

logger = logging.getLogger(__name__)


class DicomError(Exception):
    """The file is not an ingestible DICOM object; ``reason`` says why (no patient data in it)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InflateLimit(DicomError):
    """A deflated data set that inflates past ``inflate_limit`` (``limit_mb``, in MB)."""

    def __init__(self, limit: int):
        self.limit_mb = max(1, limit // 1_000_000)
        super().__init__(Deferred(gettext_noop(
            "refused: its deflated (compressed) data set inflates to more than %(limit)s MB, the most accepted "
            "for one file (a decompression bomb?)"), limit=self.limit_mb))


@dataclass(frozen=True)
class DicomHeader:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    series_number: int | None
    instance_number: int | None
    modality: str
    series_description: str
    body_part_examined: str
    accession_number: str
    study_date: date | None
    study_description: str
    patient_id: str
    patient_name: str
    patient_birth_date: date | None
    frames: int
    rows: int | None
    columns: int | None
    is_dicomdir: bool = False
    #: the authority that assigned ``patient_id`` (Issuer of Patient ID), "" when the file names none
    #: (absent from headers prepared by an older release: ``follow.header_from_json``)
    issuer_of_patient_id: str = ""
    #: what is wrong with a file that is still ingested (it is kept: nothing is lost), as kinds of
    #: ``WARNINGS``; the study it goes into is then ready with warnings
    warnings: tuple[str, ...] = ()
    #: its pixels may identify the patient (``screen_pixels``: text burned in, said or likely, a
    #: face); absent from headers prepared by an older release (``follow.header_from_json``): taken
    #: as True, never as safe unread
    pixels_may_identify: bool = True


#: warnings of a file that is ingested all the same (``DicomHeader.warnings``): the kind a study
#: records (``Study.warnings``, with the file's SOP Instance UID) and the reason its report line gives
PIXEL_DATA_SHORT = "pixel_data_short"
WARNINGS: dict[str, str] = {
    PIXEL_DATA_SHORT: gettext_noop("kept, but its image data is shorter than its header says: the image cannot "
                                   "be shown"),
}


def warning_reason(kinds) -> str:
    """The reason a report line gives for a file ingested with ``kinds`` of ``WARNINGS`` ("" for none)."""
    return Deferred.join(Deferred(WARNINGS[kind]) for kind in kinds if kind in WARNINGS) if kinds else ""


def values(value) -> list:
    """A value of multiplicity 1-n as a list: pydicom gives one value as itself (a number, a
    string), several as a MultiValue; absent or empty is []."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, pydicom.multival.MultiValue | list | tuple) else [value]


def _text(ds, keyword: str, limit: int | None = 200) -> str:
    """A text value as the index keeps it: several values joined with a backslash (as DICOM
    writes them), control characters (NUL included) as spaces, cut to the column's length."""
    value = ds.get(keyword)
    text = "\\".join(str(v) for v in values(value)) if value is not None else ""
    return CONTROL.sub(" ", text).strip()[:limit]


def _uid(ds, keyword: str) -> str:
    """An identifying UID (SOP instance, study, series) as the index keys on it, or "" when
    absent or only padding. Raise unless it can serve as an identity: one value, of components
    that ``UID_COMPONENT`` matches, ``UID_MAX`` characters at most. Reasons name the attribute,
    never its value."""
    value = ds.get(keyword)
    if len(items := values(value)) > 1:
        raise DicomError(Deferred(gettext_noop("invalid %(keyword)s: several values where one is expected"),
                                  keyword=keyword))
    first = items[0] if items else ""
    # under a VR that pydicom leaves as bytes (OB): decoded as a UI value would be
    uid = (first.decode("latin-1") if isinstance(first, bytes) else str(first)).rstrip("\0 ")
    if not uid:
        return ""
    if "\\" in uid:  # under a VR pydicom does not split (UT, OB)
        raise DicomError(Deferred(gettext_noop("invalid %(keyword)s: several values where one is expected"),
                                  keyword=keyword))
    components = uid.split(".")
    if not all(UID_COMPONENT.fullmatch(c) for c in components if c):
        raise DicomError(Deferred(gettext_noop("invalid %(keyword)s: characters other than digits and dots"),
                                  keyword=keyword))
    if "" in components:
        raise DicomError(Deferred(gettext_noop("invalid %(keyword)s: an empty component (a dot at either end, or "
                                               "two together)"), keyword=keyword))
    if len(uid) > UID_MAX:
        # cut to the column, two objects whose UIDs differ only past it would become one
        raise DicomError(Deferred(gettext_noop("invalid %(keyword)s: longer than %(max)s characters"),
                                  keyword=keyword, max=UID_MAX))
    return uid


def _int(ds, keyword: str, low: int = INT_MIN, high: int = INT_MAX) -> int | None:
    """An integer value, or None where it is absent, not one integer ("abc", "1.5", several
    values, infinite, bytes of the wrong length) or outside ``low``..``high`` (the index's column
    could not hold it)."""
    try:
        value = ds.get(keyword)
        number = None if value in (None, "") else int(value)
    except (TypeError, ValueError, ArithmeticError, BytesLengthException):
        return None
    return number if number is None or low <= number <= high else None


def _date(ds, keyword: str) -> date | None:
    value = _text(ds, keyword)
    if len(value) >= 8 and value[:8].isdigit():
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        except ValueError:
            return None
    return None


def _size(fh: IO[bytes]) -> int:
    pos = fh.tell()
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(pos)
    return size


def _check_fragments(fh: IO[bytes], at: int, size: int, end: str) -> None:
    """Raise unless the encapsulated pixel data starting at ``at`` is whole: its items (the
    offset table, then the fragments) each fit in the file, up to the sequence delimiter. What
    follows the delimiter (Data Set Trailing Padding, a digital signature) is the file's business:
    only the file's last bytes had been looked at, so such files were refused as truncated."""
    while True:
        fh.seek(at)
        head = fh.read(8)
        if len(head) < 8:
            raise DicomError(Deferred(gettext_noop("truncated: the compressed pixel data has no end marker")))
        group, element, length = struct.unpack(end + "HHI", head)
        if (group, element) == SEQ_DELIMITER_TAG:
            return
        if (group, element) != ITEM_TAG or length == 0xFFFFFFFF:
            raise DicomError(Deferred(gettext_noop("damaged: the compressed pixel data is not a sequence of "
                                                   "fragments")))
        at += 8 + length
        if at > size:
            raise DicomError(Deferred(gettext_noop("truncated: the compressed pixel data has no end marker")))


def _check_complete(fh: IO[bytes], pos: int, size: int, ds, tsuid: UID) -> tuple[tuple[int, int], int] | None:
    """Raise if the pixel data element is cut short (a truncated transfer). Return the pixel data
    element's tag and length (0xFFFFFFFF: encapsulated), None where there is none or it is not
    looked at (a deflated data set)."""
    if tsuid == DEFLATED:  # the dataset is compressed: positions are not file offsets
        return None
    if pos >= size:
        if "Rows" in ds or "Columns" in ds:  # a file cut inside the Columns element's header has Rows only
            raise DicomError(Deferred(gettext_noop("truncated: the image has no pixel data")))
        return None
    little = tsuid.is_little_endian if tsuid.is_transfer_syntax else True
    implicit = tsuid.is_implicit_VR if tsuid.is_transfer_syntax else False
    fh.seek(pos)
    head = fh.read(12)
    if len(head) < 8:
        raise DicomError(Deferred(gettext_noop("truncated: the file ends inside an element header")))
    end = "<" if little else ">"
    group, element = struct.unpack(end + "HH", head[:4])
    if (group, element) not in PIXEL_TAGS:
        return None
    vr = head[4:6]
    if implicit or not (vr.isalpha() and vr.isupper()):
        # no VR where the transfer syntax promises one: the element is in implicit VR, as pydicom
        # reads it too (pydicom's SC_rgb_jpeg.dcm); its "length" is not the VR's last two bytes
        (length,), header = struct.unpack(end + "I", head[4:8]), 8
    elif vr in LONG_VRS:
        if len(head) < 12:
            raise DicomError(Deferred(gettext_noop("truncated: the file ends inside the pixel data header")))
        (length,), header = struct.unpack(end + "I", head[8:12]), 12
    else:
        (length,), header = struct.unpack(end + "H", head[6:8]), 8
    if length == 0xFFFFFFFF:
        _check_fragments(fh, pos + header, size, end)
    elif pos + header + length > size:
        raise DicomError(Deferred(gettext_noop("truncated: pixel data needs %(needed)s bytes, the file holds %(held)s"),
                                  needed=length, held=size - pos - header))
    return (group, element), length


#: bits of a sample of float and double float pixel data, whatever Bits Allocated says
FLOAT_BITS = {Tag(0x7FE0, 0x0008): 32, Tag(0x7FE0, 0x0009): 64}


def native_pixel_bytes(ds, tag: int | tuple[int, int] = (0x7FE0, 0x0010)) -> int | None:
    """The bytes native (uncompressed) pixel data of ``ds`` takes by its header: rows x columns x
    samples per pixel x frames x Bits Allocated / 8 (1-bit data packed 8 pixels a byte, the last
    byte partly used; YBR_FULL_422 two samples a pixel, PS3.5 8.2.1), without the pad byte of
    an odd length. None when the header does not say (no Rows, Columns or Bits Allocated, a Bits
    Allocated that is no whole number of bytes but 1), as the decoder then refuses the image."""
    rows, columns = _int(ds, "Rows", 0, US_MAX), _int(ds, "Columns", 0, US_MAX)
    bits = FLOAT_BITS.get(Tag(tag)) or _int(ds, "BitsAllocated", 0, 64)
    if not rows or not columns or not bits or (bits != 1 and bits % 8):
        return None
    samples = _int(ds, "SamplesPerPixel", 1, US_MAX) or 1
    frames = _int(ds, "NumberOfFrames", 1) or 1
    pixels = rows * columns * samples * frames
    length = -(-pixels // 8) if bits == 1 else pixels * (bits // 8)
    if _text(ds, "PhotometricInterpretation", 16) == "YBR_FULL_422":
        length = length // 3 * 2
    return length


def _file_warnings(ds, tsuid: UID, pixel_element: tuple[tuple[int, int], int] | None) -> tuple[str, ...]:
    """What is wrong with a file that is ingested all the same (``WARNINGS``): native pixel data
    shorter than its header says (Rows and Columns that do not match it, a frame missing), which
    no decoder can show; longer is accepted (the pad byte of an odd length, trailing bytes the
    decoders leave alone). Compressed pixel data is not looked at here: its length says nothing."""
    if pixel_element is None or not tsuid.is_transfer_syntax or tsuid.is_compressed:
        return ()
    tag, length = pixel_element
    if length == 0xFFFFFFFF:
        return ()
    expected = native_pixel_bytes(ds, tag)
    if expected is not None and length < expected:
        logger.info("DICOM pixel data short: %d bytes where the header says %d", length, expected)
        return (PIXEL_DATA_SHORT,)
    return ()


def _ended_early(exc: Exception, fh: IO[bytes], size: int) -> bool:
    """Whether pydicom failed because the file ends too soon: it raises OSError ("No tag to
    read") when the file ends inside a sequence of undefined length, and zlib an error -5
    (Z_BUF_ERROR) when a deflated data set is cut short. An element that runs past the end of
    an inflated data set raises EOFError, which pydicom's handler turns into a TypeError (it
    names the stream's file, and an inflated stream has none): the EOFError is its context."""
    if isinstance(exc, zlib.error):
        return str(exc).startswith("Error -5 ")
    if isinstance(exc.__context__, EOFError):
        return True
    try:
        return isinstance(exc, OSError) and fh.tell() >= size
    except (OSError, ValueError):
        return False


def _unreadable_tag(exc: BaseException) -> BaseTag | None:
    """The tag of the element pydicom was converting when it raised ``exc``: the innermost
    conversion of a raw element in the traceback (an unknown VR, a length that is no multiple of
    the VR's size, a value the character set cannot decode); the Specific Character Set's when
    pydicom failed outside a conversion in looking up the character sets it names. None when
    neither is in the traceback."""
    tag = None
    in_charset = False
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if frame.f_code is pydicom.dataelem.convert_raw_data_element.__code__:
            raw = frame.f_locals.get("raw")
            tag = raw.tag if isinstance(raw, RawDataElement) else tag
        in_charset = in_charset or frame.f_globals.get("__name__") == "pydicom.charset"
    return tag if tag is not None or not in_charset else SPECIFIC_CHARACTER_SET


def _unreadable(exc: Exception) -> DicomError:
    """The refusal of a file whose header pydicom failed to read: which element, where the
    traceback says. Neither the exception's text (pydicom quotes the bytes it could not convert)
    nor its type (a Python name says nothing to an uploader) is in the reason; the type and the
    tag are logged, for a developer."""
    tag = _unreadable_tag(exc)
    logger.info("DICOM header unreadable: %s at element %s", type(exc).__name__, "unknown" if tag is None else tag)
    if tag is None:
        return DicomError(Deferred(gettext_noop("damaged: the file's header cannot be read")))
    return DicomError(Deferred(gettext_noop("damaged: the header element with tag %(tag)s cannot be read"),
                               tag=str(tag)))


def _check_values(ds, size: int) -> None:
    """Raise if a value is cut short by the end of the file (``size`` bytes). pydicom reads what
    is left of a value whose length runs past the end and says nothing, so a file cut inside its
    header (a UID cut to its first digits, a sequence cut in an item) would have been ingested as
    whole; a value it deferred (``DEFER_SIZE``) it did not read, and is checked against ``size``.
    Only the elements as read are looked at (nothing is converted): a sequence of defined length
    is one value here, its items with it; one of undefined length was read to its end."""
    for dataset in (getattr(ds, "file_meta", None), ds):
        for tag in dataset.keys() if dataset is not None else ():
            raw = dataset.get_item(tag, keep_deferred=True)  # as read: nothing converted
            if not isinstance(raw, RawDataElement) or raw.length == 0xFFFFFFFF:
                continue
            if (len(raw.value) < raw.length if isinstance(raw.value, bytes)
                    else raw.value is None and raw.value_tell + raw.length > size):
                raise DicomError(Deferred(gettext_noop("truncated: the file ends inside the header")))


def inflate_limit() -> int:
    """The most a deflated data set may inflate to: what a whole object may take
    (LIGHTBOX_MAX_OBJECT_BYTES), whatever the file's size. No ratio to the compressed size: a
    legitimate deflated file can inflate thousands of times (a segmentation mask, an image mostly
    background: 4 MB of pixels in 10 KB), and memory is bounded anyway (``_inflate`` spills to a
    temporary file past INFLATE_MEMORY_MAX)."""
    return settings.LIGHTBOX_MAX_OBJECT_BYTES


def _maybe_deflated(fh: IO[bytes], force: bool) -> bool:
    """False when the file's data set is surely not deflated, from its first META_HEAD bytes: the
    file meta information (where pydicom finds the transfer syntax) ends in them and the deflated
    transfer syntax's UID is nowhere in them; True when it may be (``_deflated_meta`` then reads
    the file meta as pydicom does). A few struct reads: the header parse of every file pays it."""
    pos = fh.tell()
    head = fh.read(META_HEAD)
    fh.seek(pos)
    if head[128:132] == b"DICM":
        at = 132
    elif force:
        at = 0  # pydicom then looks for the file meta at the start
    else:
        return False  # pydicom refuses it: no DICM preamble
    if DEFLATED_BYTES in head:
        return True
    while at + 8 <= len(head):  # the file meta's elements (explicit VR little endian), to its end
        group, vr = struct.unpack_from("<H", head, at)[0], head[at + 4:at + 6]
        if group != 2:
            return False
        if vr not in KNOWN_VRS:
            return True  # pydicom may read it otherwise (as implicit VR)
        if vr in LONG_VRS:
            if at + 12 > len(head) or (length := struct.unpack_from("<I", head, at + 8)[0]) == 0xFFFFFFFF:
                return True
            at += 12 + length
        else:
            at += 8 + struct.unpack_from("<H", head, at + 6)[0]
    return len(head) == META_HEAD  # the file meta runs past the head (else the file ends in it)


def _deflated_meta(fh: IO[bytes], force: bool) -> tuple[bytes | None, pydicom.Dataset, pydicom.Dataset] | None:
    """The preamble, file meta and command set of a file whose data set is deflated, as pydicom
    reads them (``pydicom.filereader.read_partial``), ``fh`` left where the deflated data set
    starts; None (``fh`` where it was) for any other file, or one pydicom would refuse before."""
    pos = fh.tell()
    try:
        preamble = pydicom.filereader.read_preamble(fh, force)
        meta = pydicom.filereader._read_file_meta_info(fh)
        command_set = pydicom.filereader._read_command_set_elements(fh)
        deflated = meta.get("TransferSyntaxUID") == DEFLATED and fh.read(1) != b""
    except Exception:  # noqa: BLE001 - pydicom's own read fails the same way, and is reported
        deflated = False
    if not deflated:
        fh.seek(pos)
        return None
    fh.seek(-1, os.SEEK_CUR)
    return preamble, meta, command_set


def _inflate(fh: IO[bytes], limit: int) -> IO[bytes]:
    """The rest of ``fh``, a raw deflate stream, inflated: in memory up to INFLATE_MEMORY_MAX,
    then in an encrypted temporary file (``spool``; the caller closes it). Raise DicomError past
    ``limit`` bytes, and where the stream ends early; zlib.error where it is damaged. pydicom
    would inflate it whole into memory, however large: a file of 300 KB can inflate to 300 MB, a
    zip entry to many GB."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out: IO[bytes] = io.BytesIO()
    total = 0
    try:
        while not inflater.eof:
            chunk = inflater.unconsumed_tail or fh.read(INFLATE_CHUNK)
            data = inflater.decompress(chunk, INFLATE_CHUNK)
            if not data and not chunk:
                raise DicomError(Deferred(gettext_noop("truncated: the file ends inside the header")))
            total += len(data)
            if total > limit:
                logger.info("DICOM deflated data set refused: inflates past %d bytes", limit)
                raise InflateLimit(limit)
            if isinstance(out, io.BytesIO) and total > INFLATE_MEMORY_MAX:
                spooled = spool.spool()  # encrypted: the data set is never on the disk in clear
                spooled.write(out.getbuffer())
                out = spooled
            out.write(data)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def _read(fh: IO[bytes], *, force: bool = False, stop_before_pixels: bool = False,
          defer_size: int | None = None) -> tuple[FileDataset, IO[bytes]]:
    """``pydicom.dcmread(fh, ...)`` and the stream its data set was read from: ``fh``, or for a
    deflated data set a copy inflated by ``_inflate`` (never more than ``inflate_limit``; raises
    DicomError past it), which the caller closes. Deferred values are read from that stream."""
    found = _deflated_meta(fh, force) if _maybe_deflated(fh, force) else None
    if found is None:
        return pydicom.dcmread(fh, defer_size=defer_size, stop_before_pixels=stop_before_pixels, force=force), fh
    preamble, meta, command_set = found
    inflated = _inflate(fh, inflate_limit())
    stopped = []

    def at_pixels(tag, vr, length) -> bool:
        if stop_before_pixels and (tag >> 16, tag & 0xFFFF) in PIXEL_TAGS:
            stopped.append(tag)
        return bool(stopped)

    try:
        dataset = pydicom.filereader.read_dataset(inflated, is_implicit_VR=False, is_little_endian=True,
                                                  defer_size=defer_size, stop_when=at_pixels)
        if not stopped and inflated.tell() < _size(inflated):
            # pydicom stops at a value that runs past the end (it logs the EOFError) and gives what
            # it read before: the data set was cut short
            raise EOFError("the inflated data set ends inside an element")
        if command_set:
            dataset.update(command_set)
        ds = FileDataset(inflated, dataset, preamble, meta, is_implicit_VR=False, is_little_endian=True)
        ds.set_original_encoding(False, True, dataset._character_set)
        ds.filename = None  # deferred values are read from the open stream (a temporary file's "name" is its fd)
    except BaseException:
        inflated.close()
        raise
    return ds, inflated


@contextlib.contextmanager
def read(fh: IO[bytes], *, force: bool = False, stop_before_pixels: bool = False,
         defer_size: int | None = None) -> Iterator[FileDataset]:
    """``pydicom.dcmread``, but a deflated data set is never inflated past ``inflate_limit``
    (DicomError), nor whole into memory; the data set can be read (deferred values) until the end
    of the ``with``."""
    ds, stream = _read(fh, force=force, stop_before_pixels=stop_before_pixels, defer_size=defer_size)
    try:
        yield ds
    finally:
        if stream is not fh:
            stream.close()


def read_whole(fh: IO[bytes], *, force: bool = False, stop_before_pixels: bool = False) -> FileDataset:
    """``pydicom.dcmread``, every value read (none deferred: the data set needs no stream), a
    deflated data set inflated within ``inflate_limit`` (``InflateLimit`` past it)."""
    with read(fh, force=force, stop_before_pixels=stop_before_pixels) as ds:
        return ds


def parse(fh: IO[bytes]) -> DicomHeader:
    """Read one DICOM file's header (not its pixels, nor values over DEFER_SIZE) from a seekable
    binary file."""
    size = _size(fh)
    start = fh.tell()
    if size - start < 132:
        raise DicomError(Deferred(gettext_noop("not a DICOM file: too short")))
    stream = fh
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds, stream = _read(fh, stop_before_pixels=True, defer_size=DEFER_SIZE)
                pos = stream.tell()
        except DicomError:
            raise
        except InvalidDicomError:
            raise DicomError(Deferred(gettext_noop(
                "not a DICOM file (no DICM preamble or file meta information)"))) from None
        except (EOFError, struct.error):
            raise DicomError(Deferred(gettext_noop("truncated: the file ends inside the header"))) from None
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on malformed input
            if _ended_early(exc, fh, size):
                raise DicomError(Deferred(gettext_noop("truncated: the file ends inside the header"))) from None
            if isinstance(exc, zlib.error):  # its class name, "error", would say nothing
                raise DicomError(Deferred(gettext_noop(
                    "damaged: the deflated data set cannot be decompressed"))) from None
            raise _unreadable(exc) from None
        if stream is not fh:  # an inflated data set: positions are in it
            size = _size(stream)
        _check_values(ds, size)
        try:
            with warnings.catch_warnings():  # pydicom converts a value when it is first read
                warnings.simplefilter("ignore")
                return _header(stream, ds, pos, size)
        except DicomError:
            raise
        except Exception as exc:  # noqa: BLE001 - a value pydicom cannot convert (a VR that lies, a bad charset)
            raise _unreadable(exc) from None
    finally:
        if stream is not fh:
            stream.close()


def _header(fh: IO[bytes], ds, pos: int, size: int) -> DicomHeader:
    meta = getattr(ds, "file_meta", None)
    tsuid = UID(str(meta.get("TransferSyntaxUID", "") if meta is not None else "") or "1.2.840.10008.1.2")
    transfer_syntax = (_text(meta, "TransferSyntaxUID", UID_MAX) if meta is not None else "") or "1.2.840.10008.1.2"
    sop_class = _text(ds, "SOPClassUID", UID_MAX) or (_text(meta, "MediaStorageSOPClassUID", UID_MAX) if meta else "")
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return DicomHeader(sop_instance_uid="", sop_class_uid=DICOMDIR_SOP_CLASS, transfer_syntax_uid=transfer_syntax,
                           study_instance_uid="", series_instance_uid="", series_number=None,
                           instance_number=None, modality="", series_description="", body_part_examined="",
                           accession_number="", study_date=None, study_description="", patient_id="",
                           patient_name="", patient_birth_date=None, frames=0, rows=None, columns=None,
                           is_dicomdir=True)
    uids = {}
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        uids[keyword] = uid = _uid(ds, keyword)
        if not uid:
            promised = meta is not None and bool(_text(meta, "MediaStorageSOPInstanceUID", UID_MAX))
            if promised and pos >= size:
                # the file meta names an instance but the dataset stops short of its identity
                raise DicomError(Deferred(gettext_noop("missing %(keyword)s: the file ends early (truncated?)"),
                                               keyword=keyword))
            raise DicomError(Deferred(gettext_noop("missing %(keyword)s"), keyword=keyword))
    pixel_element = _check_complete(fh, pos, size, ds, tsuid)
    return DicomHeader(
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=sop_class,
        transfer_syntax_uid=transfer_syntax,
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        modality=_text(ds, "Modality", 16),
        series_description=_text(ds, "SeriesDescription"),
        body_part_examined=_text(ds, "BodyPartExamined", 64),
        accession_number=_text(ds, "AccessionNumber", 64),
        study_date=_date(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        patient_id=_text(ds, "PatientID", 64),
        issuer_of_patient_id=_text(ds, "IssuerOfPatientID", 64),
        patient_name=_text(ds, "PatientName"),
        patient_birth_date=_date(ds, "PatientBirthDate"),
        frames=_int(ds, "NumberOfFrames", 1) or 1,
        rows=_int(ds, "Rows", 0, US_MAX),
        columns=_int(ds, "Columns", 0, US_MAX),
        warnings=_file_warnings(ds, tsuid, pixel_element),
        pixels_may_identify=screen_pixels(ds),
    )


def screen_pixels(ds) -> bool:
    """Whether the pixels of the object whose header ``ds`` is (read without its pixel data) may
    identify its patient: the de-identification's own screening (``apps.deid.profile.
    pixels_may_identify``, the one rule), never a second one. A header it cannot decide on (a
    value that cannot be read) is taken as may identify."""
    from apps.deid.profile import pixels_may_identify

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pixels_may_identify(ds, header_only=True)
    except Exception:  # noqa: BLE001 - unreadable: not shown as safe
        return True


def pixels_may_identify_of(fh: IO[bytes]) -> bool:
    """``screen_pixels`` of a stored file (an open blob, ``apps.imaging.blobs.open_blob``), its
    header only read (``stop_before_pixels``); a file that cannot be read (its bytes altered, not
    DICOM) is taken as may identify."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with read(fh, stop_before_pixels=True, defer_size=DEFER_SIZE) as ds:
                return screen_pixels(ds)
    except Exception:  # noqa: BLE001 - pydicom, the cipher (InvalidTag), storage: unreadable is not safe
        return True


def dicomdir_references(fh: IO[bytes]) -> list[str]:
    """Relative paths (with '/') of the files a DICOMDIR references."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with read(fh, stop_before_pixels=True) as ds:
            paths = []
            for record in ds.get("DirectoryRecordSequence", []):
                if parts := values(record.get("ReferencedFileID")):
                    paths.append("/".join(str(p) for p in parts))
    return paths
