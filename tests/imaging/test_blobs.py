from __future__ import annotations

import base64
import io
import os

import pytest
from cryptography.exceptions import InvalidTag
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import transaction

from apps.imaging import blobs
from apps.imaging.models import Blob

pytestmark = pytest.mark.django_db


class _NoSeek(io.RawIOBase):
    def __init__(self, data: bytes):
        self._inner = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, b):
        data = self._inner.read(len(b))
        b[:len(data)] = data
        return len(data)


@pytest.mark.parametrize("size", [0, 1, blobs.CHUNK_SIZE - 1, blobs.CHUNK_SIZE, 2 * blobs.CHUNK_SIZE + 7])
def test_round_trip_at_chunk_edges(size):
    data = os.urandom(size)
    blob = blobs.put_blob(io.BytesIO(data))
    assert blob.size == size == blobs.blob_plaintext_size(blob)
    with blobs.open_blob(blob) as fh:
        assert fh.read() == data
    with default_storage.open(blob.storage_name, "rb") as raw:
        stored = raw.read()
    chunks = max(1, -(-size // blobs.CHUNK_SIZE))
    assert len(stored) == size + chunks * blobs.TAG
    if size >= 64:
        assert data[:64] not in stored


def test_non_seekable_stream_is_stored():
    data = os.urandom(3000)
    blob = blobs.put_blob(_NoSeek(data))
    assert blobs.open_blob(blob).read() == data


def test_same_bytes_stored_once():
    data = os.urandom(5000)
    first = blobs.put_blob(io.BytesIO(data))
    mtime = default_storage.get_modified_time(first.storage_name)
    second = blobs.put_blob(io.BytesIO(data))
    assert second.pk == first.pk
    assert Blob.objects.count() == 1
    assert default_storage.get_modified_time(first.storage_name) == mtime


def test_seek_and_partial_reads():
    data = os.urandom(2 * blobs.CHUNK_SIZE + 100)
    blob = blobs.put_blob(io.BytesIO(data))
    fh = blobs.open_blob(blob)
    fh.seek(blobs.CHUNK_SIZE + 10)
    assert fh.read(50) == data[blobs.CHUNK_SIZE + 10:blobs.CHUNK_SIZE + 60]
    fh.seek(-20, io.SEEK_END)
    assert fh.read() == data[-20:]
    fh.seek(5)
    assert fh.read(blobs.CHUNK_SIZE) == data[5:5 + blobs.CHUNK_SIZE]


def test_tampered_ciphertext_is_refused():
    blob = blobs.put_blob(io.BytesIO(os.urandom(1000)))
    path = default_storage.path(blob.storage_name)
    with open(path, "r+b") as fh:
        fh.seek(10)
        byte = fh.read(1)
        fh.seek(10)
        fh.write(bytes([byte[0] ^ 1]))
    with pytest.raises(InvalidTag):
        blobs.open_blob(blob).read()


def test_truncated_blob_is_refused():
    blob = blobs.put_blob(io.BytesIO(os.urandom(blobs.CHUNK_SIZE + 100)))
    path = default_storage.path(blob.storage_name)
    with open(path, "r+b") as fh:
        fh.truncate(blobs.CHUNK_SIZE + blobs.TAG)
    fh = blobs.open_blob(blob)
    with pytest.raises(InvalidTag):
        fh.read()


def test_rotate_keys_rewraps_without_touching_data(settings):
    data = os.urandom(4000)
    blob = blobs.put_blob(io.BytesIO(data))
    old_kid = blob.key_id
    with default_storage.open(blob.storage_name, "rb") as raw:
        before = raw.read()
    new_key = base64.b64encode(os.urandom(32)).decode()
    settings.LIGHTBOX_MASTER_KEYS = f"rotated2:{new_key}," + settings.LIGHTBOX_MASTER_KEYS
    call_command("rotate_keys", stdout=io.StringIO())
    blob.refresh_from_db()
    assert blob.key_id == "rotated2" != old_kid
    with default_storage.open(blob.storage_name, "rb") as raw:
        assert raw.read() == before
    # the old key can go: the data still opens with the new key alone
    settings.LIGHTBOX_MASTER_KEYS = f"rotated2:{new_key}"
    assert blobs.open_blob(blob).read() == data
    # recorded (the global chain: blobs are shared between organizations), with figures only
    from apps.audit.models import AuditEvent

    event = AuditEvent.objects.get(action="keys.rotated")
    assert event.organization_id is None and event.actor_type == "system"
    assert event.details == {"key_id": "rotated2", "blobs": 1, "uploads": 0}


def test_a_new_blob_file_and_its_folders_are_on_disk_before_the_row(monkeypatch):
    """The file, then every folder leading to it up to the storage root: a blob's folders are
    often new (blobs/ab/cd/), and a crash must not lose the entry of one whose blob has a row."""
    import hashlib

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(blobs.os, "fsync", fsync)
    data = os.urandom(3000)
    blob = blobs.blob_write(data, hashlib.sha256(data).hexdigest())
    assert blob.pk is None, "not recorded yet: blobs_record saves the row afterwards"
    path = os.path.realpath(default_storage.path(blob.storage_name))
    cd = os.path.dirname(path)
    ab = os.path.dirname(cd)
    root = os.path.realpath(default_storage.location)
    assert synced == [path, cd, ab, os.path.dirname(ab), root]
    assert os.path.dirname(os.path.dirname(ab)) == root  # root/blobs/ab/cd/<sha256>


def _plaintexts(n: int) -> dict[str, bytes]:
    import hashlib

    datas = [os.urandom(2000 + i) for i in range(n)]
    return {hashlib.sha256(d).hexdigest(): d for d in datas}


def _write_many(sources: dict[str, bytes]) -> list[Blob]:
    """As the follower writes a batch: started on a pool of PARALLEL_WRITES threads, then waited for."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=blobs.PARALLEL_WRITES) as pool:
        return blobs.blobs_write_finish(blobs.blobs_write_start(sources, pool))


def test_write_many_writes_several_at_once(monkeypatch):
    """Two writes must be under way together: each waits (in its fsync step) for the other."""
    import threading

    meet = threading.Barrier(2, timeout=10)
    real = blobs._make_durable

    def durable(name):
        meet.wait()
        real(name)

    monkeypatch.setattr(blobs, "_make_durable", durable)
    sources = _plaintexts(4)
    written = _write_many(sources)
    assert {b.sha256 for b in written} == set(sources)
    for blob in blobs.blobs_record(written):
        assert blobs.open_blob(blob).read() == sources[blob.sha256]


def test_write_many_is_all_or_nothing(monkeypatch):
    sources = _plaintexts(6)
    failing = sorted(sources)[2]
    real = blobs.blob_write
    names: list[str] = []

    def write(source, sha256):
        if sha256 == failing:
            raise OSError("disk full")
        blob = real(source, sha256)
        names.append(blob.storage_name)
        return blob

    monkeypatch.setattr(blobs, "blob_write", write)
    with pytest.raises(OSError, match="disk full"):
        _write_many(sources)
    assert len(names) == 5 and not any(default_storage.exists(n) for n in names)
    assert not Blob.objects.exists()



def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _copies(sha256: str) -> list[str]:
    folder = os.path.dirname(blobs.storage_name_for(sha256))
    return sorted(f"{folder}/{n}" for n in default_storage.listdir(folder)[1] if n.startswith(sha256))


def test_two_writers_of_the_same_bytes_leave_the_recorded_blob_readable():
    """Two ingests of the same study at once: both looked the blob up before either recorded
    it, so both write it. The second must not replace the first's file, whose row (and key)
    wins, nor delete it when its own row is refused."""
    data = os.urandom(5000)
    first = blobs.blob_write(data, _sha(data))
    second = blobs.blob_write(data, _sha(data))
    assert first.storage_name != second.storage_name
    kept = blobs.blobs_record([first])[0]
    assert blobs.blobs_record([second])[0].pk == kept.pk
    assert blobs.open_blob(kept).read() == data
    assert _copies(kept.sha256) == [kept.storage_name]


def test_a_late_writer_does_not_replace_a_recorded_blob():
    data = os.urandom(5000)
    kept = blobs.blobs_record([blobs.blob_write(data, _sha(data))])[0]
    late = blobs.blob_write(data, _sha(data))  # looked up before that commit
    assert blobs._record(late).pk == kept.pk
    assert blobs.open_blob(kept).read() == data
    assert _copies(kept.sha256) == [kept.storage_name]


def test_a_dead_writers_file_is_cleared_once_the_new_row_commits(django_capture_on_commit_callbacks):
    """A writer killed before recording leaves a file under the blob's name. The next writer
    takes another name, and deletes the stale file only once its own row is committed (until
    then another writer might still record that file)."""
    data = os.urandom(5000)
    stale = blobs.blob_write(data, _sha(data)).storage_name  # never recorded
    assert stale == blobs.storage_name_for(_sha(data))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        kept = blobs.blobs_record([blobs.blob_write(data, _sha(data))])[0]
    assert kept.storage_name != stale
    assert _copies(kept.sha256) == sorted([stale, kept.storage_name])  # not before the commit
    for callback in callbacks:
        callback()
    assert _copies(kept.sha256) == [kept.storage_name]
    assert blobs.open_blob(kept).read() == data


def _cleared_while_written(monkeypatch, data: bytes) -> list[Blob]:
    """Another writer of the same bytes records its own copy, and clears the others, while the
    first write of ``data`` is being made durable (between the storage's save and the fsync)."""
    real = blobs._make_durable
    winners: list[Blob] = []

    def durable(name):
        if not winners and name == blobs.storage_name_for(_sha(data)):
            other = blobs.blob_write(data, _sha(data))  # another name: this one is taken
            with transaction.atomic():
                winners.append(blobs.blobs_record([other])[0])  # clears the copy on commit
        real(name)

    monkeypatch.setattr(blobs, "_make_durable", durable)
    return winners


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["put_blob", "blobs_record"])
def test_a_writer_whose_file_another_writer_cleared_takes_that_writers_row(monkeypatch, path):
    """Two ingests (or two rendition tasks) of the same bytes at once: the one that records
    first clears the other copies, possibly while the other is still writing its file. The
    other then takes the recorded row instead of failing on its vanished file."""
    data = os.urandom(5000)
    winners = _cleared_while_written(monkeypatch, data)
    if path == "put_blob":
        blob = blobs.put_blob(io.BytesIO(data))
    else:
        late = blobs.blob_write(data, _sha(data))
        blob = blobs.blobs_record([late])[0]
        blobs.blob_files_delete([late])  # what a failed batch does: must not touch the winner's file
    assert len(winners) == 1 and blob.pk == winners[0].pk
    assert blobs.open_blob(blob).read() == data
    assert _copies(blob.sha256) == [blob.storage_name]


@pytest.mark.django_db(transaction=True)
def test_a_vanished_file_with_no_row_to_take_is_a_storage_error(monkeypatch):
    def vanish(name):
        default_storage.delete(name)
        raise FileNotFoundError(name)

    monkeypatch.setattr(blobs, "_make_durable", vanish)
    data = os.urandom(300)
    with pytest.raises(FileNotFoundError):
        blobs.put_blob(io.BytesIO(data))
    with pytest.raises(FileNotFoundError):
        blobs.blobs_record([blobs.blob_write(data, _sha(data))])
    assert not Blob.objects.filter(sha256=_sha(data)).exists()


def test_storage_that_writes_over_a_name_gets_a_name_per_write(settings, tmp_path):
    """Object storage checks a name, then writes: two writers may pass the check together, so
    there each write has its own name and no file is ever written over."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path), "allow_overwrite": True}}}
    data = os.urandom(3000)
    first, second = blobs.blob_write(data, _sha(data)), blobs.blob_write(data, _sha(data))
    assert first.storage_name != second.storage_name
    assert all(b.storage_name.startswith(blobs.storage_name_for(_sha(data)) + "_") for b in (first, second))
    kept = blobs.blobs_record([first])[0]
    assert blobs.blobs_record([second])[0].pk == kept.pk
    assert blobs.open_blob(kept).read() == data


def test_the_sweep_deletes_old_files_no_row_names():
    """A writer killed between its write and its commit leaves a file no row names. The daily
    sweep deletes it once it is old enough; a young one may be a write in progress."""
    import time
    from datetime import timedelta

    old, young, kept = os.urandom(3000), os.urandom(3000), os.urandom(3000)
    orphan = blobs.blob_write(old, _sha(old)).storage_name          # never recorded
    in_progress = blobs.blob_write(young, _sha(young)).storage_name  # not recorded yet
    recorded = blobs.blobs_record([blobs.blob_write(kept, _sha(kept))])[0]
    two_hours_ago = time.time() - 7200
    for name in (orphan, recorded.storage_name):
        os.utime(default_storage.path(name), (two_hours_ago, two_hours_ago))

    assert blobs.blobs_orphans_delete(older_than=timedelta(hours=1)) >= 1
    assert not default_storage.exists(orphan)
    assert default_storage.exists(in_progress)
    assert blobs.open_blob(recorded).read() == kept


def test_the_sweep_command_refuses_a_cutoff_under_an_hour():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="at least 1"):
        call_command("blobs_sweep", "--older-than-hours", "0.5", stdout=io.StringIO())
    out = io.StringIO()
    call_command("blobs_sweep", stdout=out)
    assert out.getvalue().startswith("deleted ")


def test_put_blob_locked_refuses_to_run_outside_a_transaction(transactional_db):
    """Outside the transaction that points a row at it, nothing would hold the lock."""
    with pytest.raises(RuntimeError, match="transaction"):
        blobs.put_blob_locked(io.BytesIO(b"bytes"))
