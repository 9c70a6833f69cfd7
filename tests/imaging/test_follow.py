"""Ingest while the upload arrives (apps.imaging.follow): the follower prepares the entries of a
zip already received, the job re-uses them only where the central directory names the very same
entry, everything else goes the usual way, and nothing prepared outlives the upload."""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.storage import default_storage
from pydicom import dcmread

from apps.imaging import blobs, follow, services, uploads
from apps.imaging.models import Blob, FileOutcome, Instance, JobState, PreparedEntry, Upload
from apps.imaging.services import ingest_job_run
from apps.organizations.models import Role
from tests.factories import member
from tests.imaging.zips import zip_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def uploader(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    return zip_bytes(entries, compression)


def _slices(small_ct) -> dict[str, bytes]:
    return {f"CT/{p.name}": p.read_bytes() for p in sorted(small_ct.iterdir())}


def _stage(org, user, data: bytes, upto: int) -> Upload:
    upload = uploads.upload_create(organization=org, user=user, length=len(data), filename="study.zip")
    return _append(upload, data, upto)


def _append(upload: Upload, data: bytes, upto: int) -> Upload:
    """What an append (PATCH) leaves: the bytes up to ``upto`` staged, the offset moved."""
    writer = uploads.upload_writer(upload)
    writer.write(data[upload.offset:upto])
    writer.close()
    Upload.objects.filter(pk=upload.pk).update(offset=upto)
    upload.refresh_from_db()
    return upload


def _finish(upload: Upload, data: bytes, monkeypatch) -> tuple[object, list[str]]:
    """Append the rest, complete the upload and run its job; returns the job and the paths the
    job extracted and parsed itself."""
    upload = _append(upload, data, len(data))
    job = uploads.upload_complete(upload=upload)
    parsed: list[str] = []
    prepare = services._prepare

    def counting(entry, fh):
        parsed.append(entry.path)
        return prepare(entry, fh)

    monkeypatch.setattr(services, "_prepare", counting)
    return ingest_job_run(job_id=job.pk), parsed


def _offsets(data: bytes) -> list[int]:
    return [i.header_offset for i in zipfile.ZipFile(io.BytesIO(data)).infolist()]


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_received_entries_are_prepared_and_the_job_reuses_them(org_a, uploader, small_ct, monkeypatch, compression):
    files = _slices(small_ct)
    data = _zip(files, compression)
    offsets = _offsets(data)
    upload = _stage(org_a, uploader, data, offsets[3] + 40)  # entries 0-2 received, 3 begun

    assert follow.upload_follow(upload_id=upload.pk) == 3
    upload.refresh_from_db()
    assert upload.follow_offset == offsets[3] and not upload.follow_done
    assert sorted(PreparedEntry.objects.values_list("name", flat=True)) == list(files)[:3]
    assert follow.upload_follow(upload_id=upload.pk) == 0  # nothing new: nothing done twice

    upload = _append(upload, data, len(data) - 10)  # all entries, part of the central directory
    assert follow.upload_follow(upload_id=upload.pk) == 3
    upload.refresh_from_db()
    assert upload.follow_done, "the central directory ends the following"
    prepared_blobs = set(PreparedEntry.objects.values_list("blob_id", flat=True))

    job, parsed = _finish(upload, data, monkeypatch)

    assert job.state == JobState.DONE and job.files_ingested == 6 and job.files_prepared == 6
    assert parsed == [], "every entry was prepared: none is read again"
    for content in files.values():
        uid = dcmread(io.BytesIO(content), stop_before_pixels=True).SOPInstanceUID
        instance = Instance.objects.get(sop_instance_uid=uid)
        assert instance.sha256 == hashlib.sha256(content).hexdigest()
        assert (instance.rows, instance.columns) == (64, 64)
    assert set(Instance.objects.values_list("blob_id", flat=True)) == prepared_blobs
    assert not PreparedEntry.objects.exists()
    assert Blob.objects.count() == 6 and all(default_storage.exists(b.storage_name) for b in Blob.objects.all())


def _patch_central(data: bytes, name: bytes, *, new_name: bytes | None = None, crc_delta: int = 0) -> bytes:
    """Change one entry of the central directory only (its local header stays as it was)."""
    at = data.rindex(name) - 46  # the central directory header holding the name (the last copy)
    assert data[at:at + 4] == b"PK\x01\x02"
    out = bytearray(data)
    if new_name is not None:
        assert len(new_name) == len(name)
        out[at + 46:at + 46 + len(name)] = new_name
    if crc_delta:
        (crc,) = struct.unpack_from("<I", out, at + 16)
        struct.pack_into("<I", out, at + 16, (crc + crc_delta) & 0xFFFFFFFF)
    return bytes(out)


def test_the_central_directory_decides(org_a, uploader, small_ct, monkeypatch):
    files = dict(list(_slices(small_ct).items())[:3])
    data = _zip(files)
    data = _patch_central(data, b"CT/IM00001.dcm", new_name=b"../IM00001.dcm")
    data = _patch_central(data, b"CT/IM00002.dcm", crc_delta=1)
    upload = _stage(org_a, uploader, data, len(data) - 1)
    assert follow.upload_follow(upload_id=upload.pk) == 3  # the local headers look fine
    early = {p.name: p.blob for p in PreparedEntry.objects.select_related("blob")}

    job, parsed = _finish(upload, data, monkeypatch)

    outcomes = {r.path: (r.outcome, r.reason) for r in job.files.all()}
    assert outcomes["CT/IM00000.dcm"][0] == FileOutcome.INGESTED
    assert outcomes["../IM00001.dcm"] == (FileOutcome.SKIPPED, "unsafe path in zip: '..' escapes the archive")
    # its prepared twin had the right bytes; the directory's CRC does not match them: extracted
    # again (not trusted), and the zip's own CRC check reports it
    assert outcomes["CT/IM00002.dcm"] == (FileOutcome.SKIPPED, "damaged zip entry (checksum or compressed data)")
    assert parsed == [] and job.files_prepared == 1
    # what the directory refused leaves nothing behind: rows and stored files of its blobs
    kept = early.pop("CT/IM00000.dcm")
    assert Instance.objects.get().blob == kept
    assert list(Blob.objects.all()) == [kept]
    assert not [b for b in early.values() if default_storage.exists(b.storage_name)]
    assert not PreparedEntry.objects.exists()


class _Unseekable(io.RawIOBase):
    def __init__(self):
        self.buf = io.BytesIO()

    def writable(self):
        return True

    def write(self, b):
        return self.buf.write(b)


def test_what_cannot_be_read_ahead_is_left_to_the_job(org_a, uploader, small_ct, monkeypatch):
    files = _slices(small_ct)
    sink = _Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:  # a streamed zip: data descriptors
        for name, content in files.items():
            zf.writestr(name, content)
    data = sink.buf.getvalue()
    upload = _stage(org_a, uploader, data, len(data) // 2)

    assert follow.upload_follow(upload_id=upload.pk) == 0
    upload.refresh_from_db()
    assert upload.follow_done and not PreparedEntry.objects.exists()
    assert follow.upload_follow(upload_id=upload.pk) == 0

    job, parsed = _finish(upload, data, monkeypatch)
    assert job.files_ingested == 6 and job.files_prepared == 0 and sorted(parsed) == sorted(files)


def test_an_undecodable_entry_name_stops_the_follower(org_a, uploader, small_ct):
    data = bytearray(_zip({"CT/x.dcm": sorted(small_ct.iterdir())[0].read_bytes()}))
    struct.pack_into("<H", data, 6, 0x800)            # the local header says: UTF-8 name
    data[30:32] = b"\xff\xfe"                         # ... and it is not
    upload = _stage(org_a, uploader, bytes(data), len(data) - 1)
    assert follow.upload_follow(upload_id=upload.pk) == 0
    upload.refresh_from_db()
    assert upload.follow_done and not PreparedEntry.objects.exists()


def test_a_single_dicom_file_is_not_followed(org_a, uploader, small_ct):
    data = sorted(small_ct.iterdir())[0].read_bytes()
    upload = _stage(org_a, uploader, data, len(data) // 2)
    assert follow.upload_follow(upload_id=upload.pk) == 0
    upload.refresh_from_db()
    assert upload.follow_done


def test_the_follower_applies_the_entry_checks(org_a, uploader, small_ct, monkeypatch):
    good = sorted(small_ct.iterdir())[0].read_bytes()
    entries = {
        "CT/good.dcm": good,
        "../escape.dcm": good,
        "bomb.dcm": b"\0" * (2 * 1024 * 1024),           # expands ~1000x
        "nested.zip": _zip({"CT/x.dcm": good}),
        "CT/DICOMDIR": good,
        "notes.dcm": b"not a DICOM file " * 100,
        "lying.dcm": b"\0" * 300_000,                    # its local header will claim 1000 bytes
    }
    data = bytearray(_zip(entries, zipfile.ZIP_DEFLATED))
    lying = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("lying.dcm").header_offset
    struct.pack_into("<I", data, lying + 22, 1000)
    data = bytes(data)
    upload = _stage(org_a, uploader, data, len(data) - 1)

    assert follow.upload_follow(upload_id=upload.pk) == 1
    assert list(PreparedEntry.objects.values_list("name", flat=True)) == ["CT/good.dcm"]

    job, parsed = _finish(upload, data, monkeypatch)
    outcomes = {r.path: r.outcome for r in job.files.all()}
    assert outcomes.pop("CT/good.dcm") == FileOutcome.INGESTED
    assert set(outcomes.values()) == {FileOutcome.SKIPPED}
    assert "CT/good.dcm" not in parsed


def test_a_terminated_upload_leaves_nothing_prepared(org_a, uploader, small_ct):
    data = _zip(_slices(small_ct))
    upload = _stage(org_a, uploader, data, len(data) - 1)
    assert follow.upload_follow(upload_id=upload.pk) == 6
    blobs = list(Blob.objects.filter(pk__in=PreparedEntry.objects.values("blob_id")))
    assert len(blobs) == 6 and all(default_storage.exists(b.storage_name) for b in blobs)

    uploads.upload_terminate(upload=upload, by=uploader)

    assert not PreparedEntry.objects.exists() and not Blob.objects.exists()
    assert not [b for b in blobs if default_storage.exists(b.storage_name)]
    assert follow.upload_follow(upload_id=upload.pk) == 0


def test_an_expired_upload_leaves_nothing_prepared(org_a, uploader, small_ct):
    from datetime import timedelta

    from django.utils import timezone

    data = _zip(_slices(small_ct))
    upload = _stage(org_a, uploader, data, len(data) // 2)
    assert follow.upload_follow(upload_id=upload.pk) > 0
    blobs = list(Blob.objects.all())
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert uploads.uploads_expire() == 1

    assert not PreparedEntry.objects.exists() and not Blob.objects.exists()
    assert not [b for b in blobs if default_storage.exists(b.storage_name)]


def test_a_follower_overtaken_drops_its_batch(org_a, uploader, small_ct):
    data = _zip(_slices(small_ct))
    upload = _stage(org_a, uploader, data, len(data) - 1)
    with uploads.upload_open(upload) as fh:
        end, item = follow._entry(fh, 0, upload.offset)
    assert item is not None

    follow.prepared_for_job(upload)  # the job started: the follower must not add anything now
    assert follow.upload_follow(upload_id=upload.pk) == 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        batch = follow._commit_start(pool, 0, end, [item])
        assert not follow._commit_finish(upload, batch)
    written = [write.result().storage_name for write in batch.writes]
    assert len(written) == 1 and written[0].startswith(f"blobs/{item.sha256[:2]}/{item.sha256[2:4]}/{item.sha256}")
    assert not PreparedEntry.objects.exists() and not Blob.objects.exists()
    assert not default_storage.exists(written[0])


def test_a_follower_drops_its_batch_when_a_blob_it_found_is_deleted_meanwhile(org_a, uploader, small_ct):
    """Blobs are shared (dedup): another study's deletion may remove one between the batch's
    lookup and its commit. The batch has let go of its bytes, so it is dropped, and the job
    stores those bytes."""
    slices = _slices(small_ct)
    name, first = sorted(slices.items())[0]
    stored = blobs.put_blob(io.BytesIO(first))  # already stored (by another study)
    data = _zip({name: first})
    upload = _stage(org_a, uploader, data, len(data) - 1)
    with uploads.upload_open(upload) as fh:
        end, item = follow._entry(fh, 0, upload.offset)
    with ThreadPoolExecutor(max_workers=2) as pool:
        batch = follow._commit_start(pool, 0, end, [item])
        assert batch.found == {stored.sha256: stored} and not batch.writes
        Blob.objects.filter(pk=stored.pk).delete()  # that study's deletion commits
        assert not follow._commit_finish(upload, batch)
    assert not PreparedEntry.objects.exists()
    upload.refresh_from_db()
    assert upload.follow_offset == 0


def test_the_follower_is_queued_only_with_a_worker_and_while_bytes_are_missing(
        org_a, uploader, small_ct, settings, monkeypatch, django_capture_on_commit_callbacks):
    from django.test import Client

    from apps.imaging import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.upload_follow_task, "delay", queued.append)
    monkeypatch.setattr(tasks.ingest_job_run_task, "delay", lambda job_id: None)
    data = _zip(_slices(small_ct))
    client = Client()
    client.force_login(uploader)
    tus = {"HTTP_TUS_RESUMABLE": "1.0.0"}

    def send(follow_on: bool, eager: bool) -> list[int]:
        settings.LIGHTBOX_INGEST_FOLLOW, settings.CELERY_TASK_ALWAYS_EAGER = follow_on, eager
        queued.clear()
        r = client.post("/api/v1/uploads/", HTTP_UPLOAD_LENGTH=str(len(data)), **tus)
        url = r["Location"].split("testserver", 1)[-1]
        half = len(data) // 2
        with django_capture_on_commit_callbacks(execute=True):
            for start, end in ((0, half), (half, len(data))):
                r = client.generic("PATCH", url, data[start:end], content_type="application/offset+octet-stream",
                                   HTTP_UPLOAD_OFFSET=str(start), **tus)
                assert r.status_code == 204
        return list(queued)

    upload_pk = lambda: Upload.objects.order_by("-pk").values_list("pk", flat=True).first()  # noqa: E731
    assert send(True, False) == [upload_pk()], "after the first half only: the job reads the last part"
    assert send(True, True) == [], "eager (no worker): the task would run inside the request"
    assert send(False, False) == []

    def unreachable(upload_id):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.upload_follow_task, "delay", unreachable)
    assert send(True, False) == [], "no broker: the appends still succeed (204), nothing followed"


def test_appends_queue_one_follower_until_it_begins(org_a, uploader, small_ct, settings, monkeypatch,
                                                    django_capture_on_commit_callbacks):
    """A fast upload's appends queue one follower task, not one each (all but the first would find
    nothing to do, each taking the worker's turn before the ingest job); once that task begins
    reading, the next append queues the next; a send that fails lets the next append try again."""
    from django.test import Client

    from apps.imaging import tasks

    settings.LIGHTBOX_INGEST_FOLLOW, settings.CELERY_TASK_ALWAYS_EAGER = True, False
    queued: list[int] = []
    broker_up = [False]

    def delay(upload_id):
        if not broker_up[0]:
            raise ConnectionError("broker down")
        queued.append(upload_id)

    monkeypatch.setattr(tasks.upload_follow_task, "delay", delay)
    data = _zip(_slices(small_ct))
    client = Client()
    client.force_login(uploader)
    tus = {"HTTP_TUS_RESUMABLE": "1.0.0"}
    url = client.post("/api/v1/uploads/", HTTP_UPLOAD_LENGTH=str(len(data)), **tus)["Location"].split("testserver")[-1]
    cuts = [len(data) * i // 10 for i in range(11)]

    def append(i: int) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            r = client.generic("PATCH", url, data[cuts[i]:cuts[i + 1]], content_type="application/offset+octet-stream",
                               HTTP_UPLOAD_OFFSET=str(cuts[i]), **tus)
        assert r.status_code == 204

    upload = Upload.objects.get()
    append(0)
    assert queued == [] and not Upload.objects.get().follow_queued, "the send failed: nothing counts as queued"
    broker_up[0] = True
    for i in (1, 2, 3):
        append(i)
    assert queued == [upload.pk], "one task for three appends"
    follow.upload_follow(upload_id=upload.pk)  # the task runs: it reads all that arrived
    assert PreparedEntry.objects.exists()
    append(4)
    assert queued == [upload.pk, upload.pk], "an append after that run ended queued the next task"

    entry = follow._entry
    during: list[int] = []

    def entry_then_append(fh, pos, committed):
        step = entry(fh, pos, committed)
        if step is None and not during:  # at the end of what had arrived: two appends land
            during.append(pos)
            append(5)
            append(6)
        return step

    monkeypatch.setattr(follow, "_entry", entry_then_append)
    follow.upload_follow(upload_id=upload.pk)
    assert during and queued == [upload.pk, upload.pk], "appends during a run queue nothing: it reads them"
    assert Upload.objects.get().follow_offset > during[0]
    monkeypatch.setattr(follow, "_entry", entry)
    append(7)
    assert queued == [upload.pk] * 3


def test_an_entry_claiming_to_be_small_is_never_read_whole_into_memory(org_a, uploader):
    from apps.imaging import sources

    big = b"\0" * (sources.MEMORY_MAX + 1024)
    data = bytearray(_zip({"big.dcm": big}))
    struct.pack_into("<I", data, 22, 100)  # the local header claims 100 bytes once inflated
    data = bytes(data)
    upload = _stage(org_a, uploader, data, len(data) - 1)
    reads: list[int] = []
    with uploads.upload_open(upload) as fh:
        real_read = fh.read

        def read(n=-1):
            reads.append(n)
            return real_read(n)

        fh.read = read
        end, item = follow._entry(fh, 0, upload.offset)
    assert item is None and end == 30 + len("big.dcm") + len(big)
    assert max(reads) < 1024 * 1024, "the entry's data was not read"


def test_bytes_that_arrive_during_a_run_are_read_in_that_run(org_a, uploader, small_ct, monkeypatch):
    """An append while the follower works: the same run goes on to it (the task the append
    queued would only start once this one ends)."""
    data = _zip(_slices(small_ct))
    offsets = _offsets(data)
    upload = _stage(org_a, uploader, data, offsets[2])  # entries 0-1 received
    entry = follow._entry
    appended = []

    def entry_then_append(fh, pos, committed):
        step = entry(fh, pos, committed)
        if step is None and not appended:  # at the end of what had arrived: a PATCH lands
            appended.append(_append(Upload.objects.get(pk=upload.pk), data, offsets[5]).offset)
        return step

    monkeypatch.setattr(follow, "_entry", entry_then_append)
    assert follow.upload_follow(upload_id=upload.pk) == 5
    upload.refresh_from_db()
    assert appended == [offsets[5]] and upload.follow_offset == offsets[5]
    assert PreparedEntry.objects.count() == 5


def test_the_next_batch_is_read_while_the_blobs_of_one_are_written(org_a, uploader, small_ct, monkeypatch):
    data = _zip(_slices(small_ct))
    upload = _stage(org_a, uploader, data, len(data))
    monkeypatch.setattr(follow, "BATCH_FILES", 2)
    reading_on = threading.Event()
    waited: list[bool] = []
    write = blobs.blob_write

    def write_once_reading_goes_on(source, sha256):
        waited.append(reading_on.wait(5))  # a follower that waits for its writes never sets it
        return write(source, sha256)

    entry = follow._entry
    entries: list[int] = []

    def counting(fh, pos, committed):
        entries.append(pos)
        if len(entries) > 2:  # the first entry of the second batch
            reading_on.set()
        return entry(fh, pos, committed)

    monkeypatch.setattr(blobs, "blob_write", write_once_reading_goes_on)
    monkeypatch.setattr(follow, "_entry", counting)
    assert follow.upload_follow(upload_id=upload.pk) == 6
    assert waited[:2] == [True, True], "the first batch's blobs were written while the second was read"
    assert PreparedEntry.objects.count() == 6 and Blob.objects.count() == 6


def test_prepared_entries_are_committed_together_and_the_rest_in_batches(org_a, uploader, small_ct, monkeypatch):
    """The entries the follower prepared hold no bytes: the job commits them together, not in
    batches of BATCH_FILES; the entries it reads itself still count towards BATCH_FILES."""
    monkeypatch.setattr(services, "BATCH_FILES", 1)
    files = _slices(small_ct)
    data = _zip(files)
    offsets = _offsets(data)
    upload = _stage(org_a, uploader, data, offsets[4])  # entries 0-3 received
    assert follow.upload_follow(upload_id=upload.pk) == 4
    batches: list[int] = []
    finish = services._store_finish

    def counting(run, stored):
        if stored.items:
            batches.append(len(stored.items))
        return finish(run, stored)

    monkeypatch.setattr(services, "_store_finish", counting)
    job, parsed = _finish(upload, data, monkeypatch)
    assert job.state == JobState.DONE and job.files_ingested == 6 and job.files_prepared == 4
    assert len(parsed) == 2
    assert batches == [5, 1], "the four prepared entries with the first read by the job, then the other"


def test_a_batch_lets_go_of_its_bytes_once_its_writes_are_queued(org_a, uploader, small_ct):
    """The batch being written holds no entry bytes (only its writes do, until each ends): the
    follower's memory is the batch being read plus the writes in flight, not two batches."""
    data = _zip(_slices(small_ct))
    upload = _stage(org_a, uploader, data, len(data))
    items, pos = [], 0
    with uploads.upload_open(upload) as fh, pytest.raises(follow._Stop):  # at the central directory
        while (step := follow._entry(fh, pos, upload.offset)) is not None:
            pos, item = step
            if item is not None:
                items.append(item)
    assert len(items) == len(_slices(small_ct))
    expected = [hashlib.sha256(i.data).hexdigest() for i in items]
    run = follow._Run(upload, 0)
    try:
        for item in items:
            run.add(item)
        assert run.hand_over(pos)
        assert [i.sha256 for i in items] == expected
        assert all(i.data == b"" for i in items)
        assert run.finish(pos, empty_too=True)
    finally:
        run.close()
    stored = {p.sha256: p.blob for p in PreparedEntry.objects.filter(upload=upload).select_related("blob")}
    assert sorted(stored) == sorted(expected)
    for sha, blob in stored.items():
        assert hashlib.sha256(blobs.open_blob(blob).read()).hexdigest() == sha


def test_entries_with_names_longer_than_a_row_holds_are_left_to_the_job(org_a, uploader, small_ct, monkeypatch):
    """A zip may name an entry with up to 65,535 bytes: the follower leaves such an entry to the
    job (it failed recording it, a DataError on PostgreSQL), which reports it under a shortened
    path and ingests it with the rest."""
    slices = _slices(small_ct)
    long_name = "deep/" * 300 + "IM00001.dcm"
    original = slices["CT/IM00001.dcm"]
    changed = original[:-1] + bytes([original[-1] ^ 0xFF])  # differs whatever the last byte was
    data = _zip({**slices, long_name: changed})
    upload = _stage(org_a, uploader, data, len(data) - 1)
    assert follow.upload_follow(upload_id=upload.pk) == len(slices)
    assert len(long_name) > follow.NAME_MAX
    assert sorted(PreparedEntry.objects.values_list("name", flat=True)) == sorted(slices)
    job, parsed = _finish(upload, data, monkeypatch)
    assert len(parsed) == 1 and parsed[0].startswith("deep/deep/")
    lines = {r.path: r for r in job.files.all()}
    (long_line,) = [p for p in lines if p.startswith("deep/")]
    assert len(long_line) <= 1000 and long_line.endswith("deep/IM00001.dcm")
    assert lines[long_line].outcome == FileOutcome.NEW_VERSION  # changed bytes, same SOPInstanceUID
