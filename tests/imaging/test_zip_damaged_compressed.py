"""A zip entry compressed with bzip2 or LZMA whose compressed data is damaged is skipped with the
reason a damaged deflated entry gets, and the rest of the archive is ingested: the job does not
fail, on this try or any retry (bzip2 raises an OSError without an errno, LZMA an LZMAError). An
error of the disk the archive is read from (an OSError with an errno) still fails the run, to be
retried."""

from __future__ import annotations

import errno
import io
import zipfile

import pytest
from pydicom.uid import generate_uid

from apps.imaging import sources
from apps.imaging.models import FileOutcome, JobState, Study
from apps.imaging.services import ingest_job_create, ingest_job_run
from bench.ingest.synthetic import ct_slice
from tests.imaging.zips import zip_bytes

pytestmark = pytest.mark.django_db

NAMES = ("a.dcm", "b.dcm", "c.dcm")
METHODS = pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])


def _zip(method: int, *, damaged: str | None = "b.dcm") -> bytes:
    """Three slices of one series compressed with ``method``; the compressed data of ``damaged``
    overwritten after its first bytes (its headers, sizes and CRC left as they were)."""
    study, series = generate_uid(), generate_uid()
    entries = {}
    for i, name in enumerate(NAMES):
        buf = io.BytesIO()
        ct_slice(study_uid=study, series_uid=series, index=i, rows=64, columns=64).save_as(
            buf, enforce_file_format=True)
        entries[name] = buf.getvalue()
    data = bytearray(zip_bytes(entries, compression=method))
    if damaged is not None:
        info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(damaged)
        start = info.header_offset + 30 + len(damaged) + 20  # past the local header, into the data
        for i in range(start, start + 40):
            data[i] ^= 0xA5
    return bytes(data)


def _ingest(org, tmp_path, data: bytes):
    path = tmp_path / "upload.zip"
    path.write_bytes(data)
    job = ingest_job_run(job_id=ingest_job_create(organization=org, source_path=str(path), enqueue=False).pk)
    return job, {line.path: line for line in job.files.all()}


def _assert_skipped_alone(job, lines) -> None:
    assert job.state == JobState.DONE_WITH_WARNINGS
    assert lines["b.dcm"].outcome == FileOutcome.SKIPPED
    assert lines["b.dcm"].reason == "damaged zip entry (checksum or compressed data)"
    assert {lines[n].outcome for n in ("a.dcm", "c.dcm")} == {FileOutcome.INGESTED}
    assert Study.objects.get().num_instances == 2


@METHODS
def test_a_damaged_entry_is_skipped_with_a_reason(org_a, tmp_path, method):
    _assert_skipped_alone(*_ingest(org_a, tmp_path, _zip(method)))


@METHODS
def test_a_damaged_entry_extracted_to_a_temporary_file_is_skipped(org_a, tmp_path, method, monkeypatch):
    monkeypatch.setattr(sources, "MEMORY_MAX", 1024)  # every entry is copied out in chunks
    monkeypatch.setattr(sources, "COPY", 1024)
    _assert_skipped_alone(*_ingest(org_a, tmp_path, _zip(method)))


@METHODS
def test_an_error_of_the_disk_read_still_fails_the_run(org_a, tmp_path, method, monkeypatch):
    def eio(self, n=-1):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(zipfile.ZipExtFile, "read", eio)
    with pytest.raises(OSError) as raised:
        _ingest(org_a, tmp_path, _zip(method, damaged=None))
    assert raised.value.errno == errno.EIO
