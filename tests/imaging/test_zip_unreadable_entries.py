"""A zip entry Python's zipfile cannot open (a compression method it does not read, such as the
Deflate64 Windows Explorer writes for large zips; patched data; a local header whose name is
flagged UTF-8 and is not) is skipped with a reason saying what to do, and the rest of the
archive is ingested: the job does not fail, on this try or any retry."""

from __future__ import annotations

import io
import struct

import pytest
from pydicom.uid import generate_uid

from apps.imaging.models import FileOutcome, JobState, Study
from apps.imaging.services import ingest_job_create, ingest_job_run
from bench.ingest.synthetic import ct_slice
from tests.imaging.zips import zip_bytes

pytestmark = pytest.mark.django_db

NAMES = ("a.dcm", "b.dcm", "c.dcm")


def _zip() -> bytearray:
    study, series = generate_uid(), generate_uid()
    entries = {}
    for i, name in enumerate(NAMES):
        buf = io.BytesIO()
        ct_slice(study_uid=study, series_uid=series, index=i, rows=8, columns=8).save_as(buf, enforce_file_format=True)
        entries[name] = buf.getvalue()
    return bytearray(zip_bytes(entries))


def _headers(data: bytearray, signature: bytes) -> list[int]:
    found, at = [], 0
    while (at := data.find(signature, at)) >= 0:
        found.append(at)
        at += 4
    return found


def _set_method(data: bytearray, entry: int, method: int) -> None:
    """The compression method of entry ``entry``, in its local header and its central one."""
    struct.pack_into("<H", data, _headers(data, b"PK\x03\x04")[entry] + 8, method)
    struct.pack_into("<H", data, _headers(data, b"PK\x01\x02")[entry] + 10, method)


def _set_flags(data: bytearray, entry: int, flags: int, *, central: bool = True) -> None:
    local = _headers(data, b"PK\x03\x04")[entry] + 6
    struct.pack_into("<H", data, local, struct.unpack_from("<H", data, local)[0] | flags)
    if central:
        at = _headers(data, b"PK\x01\x02")[entry] + 8
        struct.pack_into("<H", data, at, struct.unpack_from("<H", data, at)[0] | flags)


def _ingest(org, tmp_path, data: bytearray):
    path = tmp_path / "upload.zip"
    path.write_bytes(bytes(data))
    job = ingest_job_run(job_id=ingest_job_create(organization=org, source_path=str(path), enqueue=False).pk)
    return job, {line.path: line for line in job.files.all()}


def _rest_ingested(job, lines, skipped: str) -> None:
    assert job.state == JobState.DONE_WITH_WARNINGS
    assert (job.files_ingested, job.files_skipped) == (2, 1)
    for name in NAMES:
        assert lines[name].outcome == (FileOutcome.SKIPPED if name == skipped else FileOutcome.INGESTED)
    assert Study.objects.get().num_instances == 2


@pytest.mark.parametrize(("method", "named"), [(9, "(Deflate64)"), (93, "(Zstandard)"), (77, "(77)")])
def test_an_entry_compressed_with_an_unreadable_method_is_skipped_with_a_reason(org_a, tmp_path, method, named):
    data = _zip()
    _set_method(data, 1, method)
    job, lines = _ingest(org_a, tmp_path, data)
    _rest_ingested(job, lines, "b.dcm")
    assert lines["b.dcm"].reason == ("compressed with a method this portal cannot read "
                                     f"{named}: re-create the zip with standard compression")


def test_an_entry_of_patched_data_is_skipped_with_a_reason(org_a, tmp_path):
    data = _zip()
    _set_flags(data, 2, 0x20)  # zipfile: NotImplementedError when it is opened
    job, lines = _ingest(org_a, tmp_path, data)
    _rest_ingested(job, lines, "c.dcm")
    assert "re-create the zip with standard compression" in lines["c.dcm"].reason


def test_a_local_header_name_flagged_utf8_that_is_not_is_skipped_with_a_reason(org_a, tmp_path):
    data = _zip()
    _set_flags(data, 1, 0x800, central=False)  # zipfile: UnicodeDecodeError when it is opened
    at = _headers(data, b"PK\x03\x04")[1] + 30
    data[at:at + 2] = b"b\xff"
    job, lines = _ingest(org_a, tmp_path, data)
    _rest_ingested(job, lines, "b.dcm")
    assert "re-create the zip with standard compression" in lines["b.dcm"].reason
