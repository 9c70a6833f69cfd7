"""apps.imaging.dicom.parse on damaged files: it returns a header whose values the index can hold
or raises DicomError with a reason, never anything else, and fast. First the cases a seeded
fuzzer found (crafted bytes), then a small seeded fuzzer over pydicom's test files so that the
class stays fixed. Test data: pydicom's files and synthetic slices (a fictional patient)."""

from __future__ import annotations

import copy
import io
import logging
import random
import re
import struct
import time
import warnings
import zlib

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from apps.core.logs import Redact
from apps.imaging import dicom
from bench.ingest.synthetic import ct_slice


def _slice(*, undefined: bool = False) -> bytes:
    """A 4x4 synthetic CT slice with a Referenced Study Sequence (before the study's UIDs)."""
    ds = ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=4, columns=4, seed=b"\1" * 32)
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    item.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedStudySequence = [item]
    ds["ReferencedStudySequence"].is_undefined_length = undefined
    item.is_undefined_length_sequence_item = undefined
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _reason(data: bytes) -> str:
    with pytest.raises(dicom.DicomError) as exc:
        dicom.parse(io.BytesIO(data))
    return str(exc.value.reason)


def test_a_file_cut_inside_a_uid_is_truncated_not_a_shorter_uid():
    # pydicom reads what is left of a value that runs past the end, silently: the file had been
    # ingested with its series UID cut to its first digits (and no pixels, no Rows to miss)
    data = _slice()
    series_uid = pydicom.dcmread(io.BytesIO(data)).SeriesInstanceUID
    cut = data.index(series_uid.encode()) + 10
    assert _reason(data[:cut]) == "truncated: the file ends inside the header"


def test_a_file_cut_inside_a_sequence_of_defined_length_is_truncated():
    data = _slice(undefined=False)
    at = data.index(b"\x08\x00\x10\x11SQ\0\0")  # (0008,1110) Referenced Study Sequence
    assert struct.unpack("<I", data[at + 8:at + 12])[0] != 0xFFFFFFFF
    assert _reason(data[:at + 40]) == "truncated: the file ends inside the header"


def test_a_file_cut_inside_a_sequence_of_undefined_length_is_truncated_not_malformed():
    # pydicom raises OSError ("No tag to read"), which had been reported as "malformed DICOM: OSError"
    data = _slice(undefined=True)
    at = data.index(b"\x08\x00\x10\x11SQ\0\0")
    assert struct.unpack("<I", data[at + 8:at + 12])[0] == 0xFFFFFFFF
    assert _reason(data[:at + 40]) == "truncated: the file ends inside the header"


def test_an_image_cut_inside_the_columns_element_header_is_truncated():
    # pydicom ends the data set quietly when fewer than 8 bytes are left: Rows was read, Columns
    # and the pixel data were not, and the file had been ingested as an image without pixels
    data = _slice()
    at = data.index(b"\x28\x00\x11\x00US")  # (0028,0011) Columns
    assert _reason(data[:at + 4]) == "truncated: the image has no pixel data"


def test_a_value_pydicom_quotes_stays_out_of_the_logs(caplog):
    # pydicom logs "Unknown encoding '<the file's Specific Character Set>'" in any validation mode;
    # a damaged file's may hold a name (here a fictional one)
    ds = ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=4, columns=4, seed=b"\1" * 32)
    ds.SpecificCharacterSet = "FICTIONAL^NAME"
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buf, enforce_file_format=True)
    caplog.clear()
    with caplog.at_level("DEBUG"):
        assert dicom.parse(io.BytesIO(buf.getvalue())).patient_name
    written = _as_written(caplog.records)
    assert "Unknown encoding" in written
    assert "FICTIONAL" not in written


def _as_written(records) -> str:
    """The records as the console handler writes them (apps.core.logs.Redact, then formatted)."""
    lines = []
    for record in records:
        record = copy.copy(record)
        Redact().filter(record)
        lines.append(logging.Formatter("%(name)s %(message)s").format(record))
    return "\n".join(lines)


def test_what_pydicoms_child_loggers_quote_stays_out_of_the_logs(caplog):
    # pydicom's pixel decoders log on their own loggers (pydicom.pixels.decoders.base), an error's
    # text with them: a logger's filter on "pydicom" alone did not see those records
    with caplog.at_level("DEBUG"):
        try:
            raise ValueError("invalid literal for int() with base 10: 'ROE^JANE'")
        except ValueError as exc:
            logging.getLogger("pydicom.pixels.decoders.base").exception(exc)
        logging.getLogger("pydicom").warning("Unknown encoding 'DOE^JOHN' - using default encoding instead")
    written = _as_written(caplog.records)
    assert "ROE" not in written and "DOE" not in written
    assert "pydicom.pixels.decoders.base" in written and "Unknown encoding" in written
    logging.getLogger("apps.imaging").warning("a message of ours with 'quotes' stays as it is")
    assert "'quotes'" in _as_written(caplog.records[-1:])


def test_a_cut_deflated_file_is_truncated_not_malformed():
    # zlib's "Error -5 ... incomplete or truncated stream" had been "malformed DICOM: error"
    data = open(get_testdata_file("image_dfl.dcm", download=False), "rb").read()
    assert dicom.parse(io.BytesIO(data)).sop_instance_uid
    assert _reason(data[:len(data) // 2]) == "truncated: the file ends inside the header"


def test_a_damaged_deflated_file_says_so():
    # zlib's error -3 had been "malformed DICOM: error" (the exception's class name)
    data = bytearray(open(get_testdata_file("image_dfl.dcm", download=False), "rb").read())
    deflated = 144 + struct.unpack("<I", data[140:144])[0]  # after the file meta (its group length)
    data[deflated + 32:deflated + 48] = b"\xff" * 16  # the data set's first elements
    assert _reason(bytes(data)) == "damaged: the deflated data set cannot be decompressed"


def test_an_element_past_the_end_of_a_deflated_data_set_is_truncated():
    # pydicom's EOFError became a TypeError in its handler (it names the stream's file, and an
    # inflated stream has none): "malformed DICOM: TypeError"
    data = open(get_testdata_file("image_dfl.dcm", download=False), "rb").read()
    deflated = 144 + struct.unpack("<I", data[140:144])[0]
    inflated = zlib.decompress(data[deflated:], -15)
    unended = b"\x09\x00\x10\x10OB\x00\x00\xff\xff\xff\xff" + inflated[:100]  # a value of undefined length
    compress = zlib.compressobj(wbits=-15)
    assert _reason(data[:deflated] + compress.compress(unended) + compress.flush()) == (
        "truncated: the file ends inside the header")


def _ct_small() -> bytes:
    return open(get_testdata_file("CT_small.dcm", download=False), "rb").read()


@pytest.mark.parametrize(("data", "tag"), [
    # the Transfer Syntax UID's VR flipped to one pydicom does not know: NotImplementedError
    (lambda: _ct_small().replace(b"\x02\x00\x10\x00UI", b"\x02\x00\x10\x00ZZ", 1), "(0002,0010)"),
    # the file meta's group length (4 bytes) under a VR of 8: BytesLengthException
    (lambda: _ct_small().replace(b"\x02\x00\x00\x00UL", b"\x02\x00\x00\x00FD", 1), "(0002,0000)"),
])
def test_a_file_meta_element_pydicom_cannot_read_is_named_by_its_tag(data, tag):
    """pydicom fails inside dcmread on these (the seeded fuzzer's commonest "malformed DICOM: ..."):
    the reason names the element by its tag, not the exception by its type."""
    assert _reason(data()) == f"damaged: the header element with tag {tag} cannot be read"


def test_a_failure_that_names_no_element_gives_a_plain_reason_and_logs_the_type_only(monkeypatch, caplog):
    def fails(*args, **kwargs):
        raise RuntimeError("unexpected value 'ROE^JANE'")

    monkeypatch.setattr(dicom.pydicom, "dcmread", fails)
    with caplog.at_level("DEBUG", logger="apps.imaging.dicom"):
        assert _reason(_ct_small()) == "damaged: the file's header cannot be read"
    written = _as_written(caplog.records)
    assert "RuntimeError" in written and "ROE" not in written


def test_every_header_value_cut_in_its_middle_is_refused():
    """Each element before the pixel data, of a file in each encoding, cut halfway through its value."""
    for name in ("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm", "test-SR.dcm"):
        data = open(get_testdata_file(name, download=False), "rb").read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        for tag in ds.keys():
            raw = ds.get_item(tag)
            if getattr(raw, "length", 0) in range(2, 0xFFFFFFFF) and raw.value_tell is not None:
                with pytest.raises(dicom.DicomError):
                    dicom.parse(io.BytesIO(data[:raw.value_tell + raw.length // 2]))


# --- a small seeded fuzzer --------------------------------------------------------------------

FILES = ("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "SC_rgb_jpeg.dcm",
         "rtdose.dcm", "rtplan.dcm", "test-SR.dcm", "image_dfl.dcm", "badVR.dcm")
SEED, MUTANTS = 20261206, 500  # per file: about 5 s
INSERTS = (b"\xfe\xff\x00\xe0\xff\xff\xff\xff",  # an item of undefined length
           b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",  # a sequence delimiter
           b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff",  # encapsulated pixel data
           b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 192")  # a character set


def _mutant(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    header = min(len(b), 1500)  # where the elements before the pixel data are, in these files
    at = rng.randrange(128, header)
    kind = rng.randrange(7)
    if kind == 0:
        return bytes(b[:rng.randrange(132, len(b))])
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(128, header)] = rng.randrange(256)
    elif kind == 2:  # a length (or anything) set to a huge, odd or undefined value
        b[at:at + 4] = struct.pack("<I", rng.choice((0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, 0x80000001, 1, 3)))
    elif kind == 3:
        b[at:at + 2] = rng.choice((b"SQ", b"UN", b"OB", b"XX", b"\0\0", b"UT", b"AT", b"DS", b"ob"))
    elif kind == 4:
        del b[at:at + rng.randrange(1, 200)]
    elif kind == 5:
        b[at:at] = data[at:at + rng.randrange(1, 400)]
    else:
        b[at:at] = rng.choice(INSERTS)
    return bytes(b)


#: an identifying UID as ingest keeps it: components of digits (or hexadecimal letters) separated by dots
IDENTITY = re.compile(r"[0-9A-Fa-f]+(\.[0-9A-Fa-f]+)*", re.ASCII)
#: what a reason for the uploader never holds: a Python type's name
TECHNICAL = re.compile(r"malformed|Error|Exception|\berror\b")


def _sane(header: dicom.DicomHeader) -> None:
    if header.is_dicomdir:
        return
    for uid in (header.sop_instance_uid, header.study_instance_uid, header.series_instance_uid):
        assert 0 < len(uid) <= dicom.UID_MAX and IDENTITY.fullmatch(uid), uid
    assert len(header.sop_class_uid) <= dicom.UID_MAX and len(header.transfer_syntax_uid) <= dicom.UID_MAX
    assert 1 <= header.frames <= dicom.INT_MAX
    assert header.rows is None or 0 <= header.rows <= dicom.US_MAX
    assert header.columns is None or 0 <= header.columns <= dicom.US_MAX


def test_seeded_mutants_give_a_header_or_a_reason():
    rng = random.Random(SEED)
    slowest = 0.0
    for name in FILES:
        data = open(get_testdata_file(name, download=False), "rb").read()
        for n in range(MUTANTS):
            mutant = _mutant(rng, data)
            start = time.perf_counter()
            try:
                header = dicom.parse(io.BytesIO(mutant))
            except dicom.DicomError as exc:
                assert str(exc.reason) and not TECHNICAL.search(exc.reason), (name, n, exc.reason)
            else:
                _sane(header)
            slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 2, slowest
