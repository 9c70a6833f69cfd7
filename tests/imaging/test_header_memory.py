"""The header parse holds little in memory, whatever the file: a deflated data set (Deflated
Explicit VR Little Endian) is inflated in chunks, into a temporary file past 8 MB, and refused past
``dicom.inflate_limit`` (a whole object's limit, LIGHTBOX_MAX_OBJECT_BYTES: set to 100 MB here, under
the 200 MB the bomb inflates to, whatever the file's size): pydicom inflated it
whole into memory, so a file of 200 KB took 200 MB and a zip entry of a few MB could take many GB.
Values over ``dicom.DEFER_SIZE`` (an encapsulated PDF, a private blob) are left in the file, not
read. The ingest stores the file's own bytes, the viewer refuses a deflated object past the limit
with a reason in words."""

from __future__ import annotations

import functools
import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import generate_uid

from apps.imaging import dicom, pixels
from apps.imaging.blobs import open_blob
from apps.imaging.models import FileOutcome, IngestFileResult, Instance, JobState
from bench.ingest.synthetic import ct_slice
from tests.imaging.zips import zip_bytes

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _object_limit(settings):
    """A whole object's limit, and so a deflated data set's, under what the bomb inflates to."""
    settings.LIGHTBOX_MAX_OBJECT_BYTES = 100 * MB


def _deflated(extra: int, *, fill=None, meta_padding: int = 0) -> bytes:
    """A deflated DICOM file (secondary capture, no image) whose data set ends with a private OB
    of ``extra`` bytes: zeros (inflating ~1000 times), or ``fill(i)`` for each MB. Written a MB at a
    time, so that making it takes no more memory than the parse should. ``meta_padding`` lengthens
    the Media Storage SOP Class UID so that the Transfer Syntax UID lies past the file's first 2 KB."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7" + "0" * meta_padding
    meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    meta.TransferSyntaxUID = dicom.DEFLATED
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID = "OT", "FICTIONAL-1"
    ds.add_new((0x0009, 0x0010), "LO", "LIGHTBOX TEST")
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = io.BytesIO()
    out.write(b"\0" * 128 + b"DICM")
    head = DicomBytesIO()
    write_file_meta_info(head, meta)
    out.write(head.getvalue())
    out.write(compressor.compress(body.getvalue()))
    out.write(compressor.compress(struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, extra)))
    zeros = bytes(MB)
    for i in range(extra // MB):
        out.write(compressor.compress(zeros if fill is None else fill(i)))
    out.write(compressor.flush())
    return out.getvalue()


@functools.cache
def _bomb() -> bytes:
    """200 MB of zeros deflated: a file of about 200 KB."""
    return _deflated(200 * MB)


def _peak(call) -> tuple[object, int]:
    """``call()``'s result (or the refusal it raised) and the most memory it held (bytes)."""
    tracemalloc.start()
    try:
        try:
            result = call()
        except Exception as exc:  # the refusal is the result looked at
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _noise(i: int) -> bytes:
    """A MB that deflates about 4 times (2 bits a byte): under the zip bomb ratio."""
    return np.random.default_rng(i).integers(0, 4, MB, dtype=np.uint8).tobytes()


def test_a_deflated_data_set_that_inflates_past_the_limit_is_refused_in_little_memory():
    data = _bomb()
    assert len(data) < MB
    limit = dicom.inflate_limit()
    assert limit == 100 * MB
    error, peak = _peak(lambda: dicom.parse(io.BytesIO(data)))
    assert isinstance(error, dicom.DicomError)
    assert error.reason == (f"refused: its deflated (compressed) data set inflates to more than {limit // 1_000_000} "
                            "MB, the most accepted for one file (a decompression bomb?)")
    assert peak < 24 * MB  # pydicom held all 200 MB (and the compressed file)


def test_a_deflated_file_whose_transfer_syntax_lies_past_the_first_bytes_is_refused_too():
    # the file meta is read as pydicom reads it wherever the Transfer Syntax UID is
    data = _deflated(200 * MB, meta_padding=3000)
    assert dicom.DEFLATED_BYTES not in data[:dicom.META_HEAD]
    error, peak = _peak(lambda: dicom.parse(io.BytesIO(data)))
    assert isinstance(error, dicom.InflateLimit)
    assert peak < 24 * MB


def test_a_deflated_data_set_larger_than_memory_holds_is_read_from_a_temporary_file():
    data = _deflated(12 * MB, fill=_noise)  # past INFLATE_MEMORY_MAX, well under the ratio
    assert dicom.inflate_limit() > 12 * MB > dicom.INFLATE_MEMORY_MAX
    header, peak = _peak(lambda: dicom.parse(io.BytesIO(data)))
    assert isinstance(header, dicom.DicomHeader), header
    assert header.transfer_syntax_uid == dicom.DEFLATED and header.modality == "OT"
    assert peak < 24 * MB
    # cut inside the large (deferred) value: the inflated data set ends before the value does
    cut = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = 144 + struct.unpack("<I", data[140:144])[0]
    inflated = zlib.decompress(data[start:], -zlib.MAX_WBITS)
    short = data[:start] + cut.compress(inflated[:len(inflated) - MB]) + cut.flush()
    with pytest.raises(dicom.DicomError) as raised:
        dicom.parse(io.BytesIO(short))
    assert raised.value.reason == "truncated: the file ends inside the header"


def test_pydicoms_deflated_test_file_is_read_as_before():
    data = open(get_testdata_file("image_dfl.dcm", download=False), "rb").read()
    header = dicom.parse(io.BytesIO(data))
    assert header.transfer_syntax_uid == dicom.DEFLATED
    assert header.sop_instance_uid and header.rows and header.columns
    info = pixels.frame_info(io.BytesIO(data))
    assert (info.rows, info.columns) == (header.rows, header.columns)
    assert pixels.decode_frame(io.BytesIO(data)).shape[:2] == (header.rows, header.columns)


def test_the_viewer_refuses_a_deflated_object_past_the_limit_in_little_memory():
    data = _bomb()
    error, peak = _peak(lambda: pixels.frame_info(io.BytesIO(data)))
    assert isinstance(error, pixels.UndecodableFrame)
    assert str(error.reason) == (
        f"The file's deflated (compressed) data set inflates to more than {dicom.inflate_limit() // 1_000_000}"
        " MB, over this portal's limit for one file: it cannot be shown here.")
    assert peak < 24 * MB


def test_the_lossless_copy_and_the_deidentified_copy_refuse_a_deflated_bomb_in_little_memory():
    from apps.deid.profile import Excluded, Reason, deidentify_file
    from apps.renditions import encoders

    data = _bomb()
    error, peak = _peak(lambda: encoders.lossless_encode(data, "rle"))
    assert isinstance(error, encoders.NotEncodable)
    limit = dicom.inflate_limit() // 1_000_000
    assert str(error.reason) == (f"The original's deflated (compressed) data set inflates to more than {limit} MB, "
                                 "over this portal's limit for one file.")
    assert peak < 24 * MB
    error, peak = _peak(lambda: deidentify_file(data, pseudonym="PSEUDO-1", key=bytes(32)))
    assert isinstance(error, Excluded) and error.reason == Reason.UNREADABLE
    assert peak < 24 * MB
    # a deflated file within the limit is read whole, as before
    ds = ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=8, columns=8)
    ds.file_meta.TransferSyntaxUID = dicom.DEFLATED
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert encoders.source_facts(out.getvalue()).transfer_syntax_uid == dicom.DEFLATED
    copy = deidentify_file(out.getvalue(), pseudonym="PSEUDO-1", key=bytes(32)).data
    assert dicom.parse(io.BytesIO(copy)).rows == 8


@pytest.mark.django_db
def test_ingest_skips_the_deflated_bomb_with_its_reason_and_ingests_the_rest(org_a, tmp_path):
    from apps.imaging.services import ingest_job_create, ingest_job_run

    normal = open(get_testdata_file("image_dfl.dcm", download=False), "rb").read()
    large = _deflated(12 * MB, fill=_noise)
    (tmp_path / "upload.zip").write_bytes(zip_bytes({"bomb.dcm": _bomb(), "dfl.dcm": normal,
                                                     "large.dcm": large}))
    job = ingest_job_create(organization=org_a, source_path=str(tmp_path / "upload.zip"), enqueue=False)
    ingest_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.DONE_WITH_WARNINGS
    lines = {line.path: line for line in IngestFileResult.objects.filter(job=job)}
    assert lines["bomb.dcm"].outcome == FileOutcome.SKIPPED
    assert lines["bomb.dcm"].reason.startswith("refused: its deflated (compressed) data set inflates to more than")
    assert lines["bomb.dcm"].reason_parts  # in words, translated where it is shown
    for name, data in (("dfl.dcm", normal), ("large.dcm", large)):
        assert lines[name].outcome == FileOutcome.INGESTED, lines[name].reason
        with open_blob(lines[name].instance.blob) as fh:
            assert fh.read() == data


def _with_private_blob(size: int) -> Dataset:
    ds = ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=8, columns=8)
    ds.add_new((0x0009, 0x0010), "LO", "LIGHTBOX TEST")
    ds.add_new((0x0009, 0x1010), "OB", bytes(size))
    return ds


@pytest.mark.django_db
def test_a_large_private_value_is_not_read_and_the_file_is_stored_whole(org_a, tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    path = folder / "big.dcm"
    _with_private_blob(64 * MB).save_as(path, enforce_file_format=True)
    with open(path, "rb") as fh:
        header, peak = _peak(lambda: dicom.parse(fh))
    assert isinstance(header, dicom.DicomHeader), header
    assert header.rows == 8 and header.warnings == ()
    assert peak < 8 * MB  # pydicom read all 64 MB
    # cut inside the value: refused as truncated, as when the value was read
    data = path.read_bytes()
    with pytest.raises(dicom.DicomError) as raised:
        dicom.parse(io.BytesIO(data[:40 * MB]))
    assert raised.value.reason == "truncated: the file ends inside the header"
    del data
    from apps.imaging.services import ingest_job_create, ingest_job_run

    job = ingest_job_create(organization=org_a, source_path=str(folder), enqueue=False)
    ingest_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.DONE
    instance = Instance.objects.get(sop_instance_uid=header.sop_instance_uid)
    digest_stored, digest_file = _sha256(open_blob(instance.blob)), _sha256(open(path, "rb"))
    assert digest_stored == digest_file


def _sha256(fh) -> str:
    import hashlib

    with fh:
        digest = hashlib.sha256()
        while chunk := fh.read(MB):
            digest.update(chunk)
    return digest.hexdigest()
