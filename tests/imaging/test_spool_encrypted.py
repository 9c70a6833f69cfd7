"""What the ingest cannot hold in memory waits in an encrypted temporary file (apps.core.spool),
never in clear in the system's temporary folder: a zip entry over ``sources.MEMORY_MAX`` (a
mammogram, a large multi-frame), a deflated data set inflated past ``dicom.INFLATE_MEMORY_MAX``, a
stream ``put_blob`` must read twice. They went to ``tempfile.TemporaryFile()`` in clear (unlinked,
but their blocks left on the disk): the DICOM preamble and the patient's name with them.

The temporary folder is a test folder here; while a spool is full, every file this process holds
open in it is read back through /proc/self/fd (an unlinked file has no name in the folder)."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from apps.core import spool
from apps.imaging import blobs, dicom, services, sources
from bench.frames_synthetic import ct_phantom_slice
from tests.factories import CaseFactory
from tests.imaging.test_header_memory import MB, _deflated, _noise
from tests.tempfolder import open_in

NAME = b"Fictional^Spooled"
MAGIC = b"DICM"


def _assert_sealed(folder: Path, at_least: int) -> None:
    """A spool is in ``folder`` (so there is something to look at), and holds neither the DICOM
    magic nor the patient's name."""
    held = open_in(folder)
    assert any(len(b) >= at_least for b in held), [len(b) for b in held]
    for content in held:
        assert MAGIC not in content
        assert NAME not in content


def _large_dicom() -> bytes:
    ds = ct_phantom_slice(0, rows=2100, columns=2100, study_uid=generate_uid(), series_uid=generate_uid())
    ds.PatientName = NAME.decode()
    raw = io.BytesIO()
    ds.save_as(raw, enforce_file_format=True)
    assert raw.tell() > sources.MEMORY_MAX
    return raw.getvalue()


@pytest.mark.django_db
def test_a_large_zip_entry_is_never_in_clear_in_the_temporary_folder(org_a, tmp_path, tmp_folder, monkeypatch):
    from apps.imaging.models import Instance
    from apps.imaging.services import ingest_job_create, ingest_job_run

    data = _large_dicom()
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("IM0001.dcm", data)
    looked = []
    real_prepare = services._prepare

    def prepare(entry, fh):  # the entry extracted whole: what its spool holds on disk, now
        _assert_sealed(tmp_folder, len(data))
        looked.append(entry.path)
        return real_prepare(entry, fh)

    monkeypatch.setattr(services, "_prepare", prepare)
    job = ingest_job_create(organization=org_a, source_path=str(archive), case=CaseFactory(organization=org_a),
                            enqueue=False)
    job = ingest_job_run(job_id=job.pk)
    assert looked == ["IM0001.dcm"]
    assert job.studies.count() == 1
    instance = Instance.objects.get(study__in=job.studies.all())
    assert instance.sha256 == instance.blob.sha256 == hashlib.sha256(data).hexdigest()  # the file's own bytes
    with blobs.open_blob(instance.blob) as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_large_deflated_data_set_is_inflated_into_an_encrypted_spool(tmp_folder):
    data = _deflated(12 * MB, fill=_noise)
    with dicom.read(io.BytesIO(data)) as ds:  # read from the inflated copy until the end of the ``with``
        assert ds.PatientID == "FICTIONAL-1"
        held = open_in(tmp_folder)
        assert any(len(b) > dicom.INFLATE_MEMORY_MAX for b in held)
        for content in held:
            assert b"FICTIONAL-1" not in content and b"LIGHTBOX TEST" not in content


@pytest.mark.django_db
def test_a_stream_put_blob_reads_twice_waits_encrypted(tmp_folder, monkeypatch):
    data = b"\0" * 128 + MAGIC + NAME + os.urandom(3 * MB)

    class Stream(io.RawIOBase):  # not seekable: put_blob spools it
        def __init__(self):
            self._src = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._src.readinto(b)

    real_hash = blobs.hash_stream

    def hash_stream(fileobj):
        _assert_sealed(tmp_folder, len(data))
        return real_hash(fileobj)

    monkeypatch.setattr(blobs, "hash_stream", hash_stream)
    blob = blobs.put_blob(Stream())
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    with blobs.open_blob(blob) as stored:
        assert stored.read() == data


def test_the_spool_reads_back_what_was_written_from_any_offset(tmp_folder):
    data = os.urandom(3 * MB + 17)
    with spool.spool() as f:
        for at in range(0, len(data), 100_003):  # writes of odd sizes
            f.write(data[at:at + 100_003])
        assert f.tell() == len(data)
        f.seek(0)
        assert f.read() == data
        for at, n in [(5, 3), (1 * MB - 1, 40), (len(data) - 7, 100), (17, 70_000), (0, 1)]:
            f.seek(at)
            assert f.read(n) == data[at:at + n]
            assert f.tell() == at + len(data[at:at + n])
        f.seek(-3, io.SEEK_END)
        assert f.read() == data[-3:]
        f.seek(10)
        with pytest.raises(io.UnsupportedOperation):  # written once: a keystream is never used twice
            f.write(b"x")
        [on_disk] = open_in(tmp_folder)
        assert len(on_disk) == len(data) and on_disk != data


def test_two_spools_of_the_same_bytes_hold_different_bytes(tmp_folder):
    data = b"\0" * 128 + MAGIC + NAME * 1000
    first, second = spool.spool(), spool.spool()
    with first, second:
        first.write(data)
        second.write(data)
        first.flush()
        second.flush()
        a, b = open_in(tmp_folder)
        assert len(a) == len(b) == len(data)
        assert a != b  # a key of its own each: nothing in common to compare


def test_a_read_that_one_pread_cannot_hold_reads_on_to_the_end(tmp_folder, monkeypatch):
    """Linux returns at most about 2 GiB from one read: ``os.pread`` cut short (as for a read of
    2 GiB or more, mocked here: no 2 GiB file in tests) is read on, never taken for the whole, and
    the position follows what was read. ``read(None)`` and ``read(-1)`` read the rest."""
    data = os.urandom(1 * MB + 5)
    real_pread = os.pread
    asked = []

    def short_pread(fd, n, offset):
        asked.append(n)
        return real_pread(fd, min(n, 100_001), offset)

    with spool.spool() as f:
        f.write(data)
        monkeypatch.setattr(spool.os, "pread", short_pread)
        f.seek(3)
        assert f.read(700_000) == data[3:700_003]
        assert f.tell() == 700_003
        buffer = bytearray(200_000)
        assert f.readinto(buffer) == 200_000 and bytes(buffer) == data[700_003:900_003]
        assert f.tell() == 900_003
        assert f.read(None) == data[900_003:]
        assert f.tell() == len(data) and f.read(None) == b"" and f.read(-1) == b""
        f.seek(10)
        assert f.read(-1) == data[10:]
        f.seek(len(data) - 9)
        assert f.read(None) == data[-9:]
        assert max(asked) > 100_001  # the reads were cut short, and read on
