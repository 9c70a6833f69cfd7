"""Ingest a zip while it is still being uploaded.

A study usually arrives as one zip in one tus upload, and most of an ingest's work is per
entry (extract, check the CRC, parse the header, hash, encrypt, store). The follower does that
work for the entries already received, while the rest of the upload still arrives, so that
little is left when the last byte lands. After each PATCH that leaves the upload unfinished,
``upload_follow_task`` (a Celery task) reads the staging file, behind the committed offset only
(bytes there never change), from ``Upload.follow_offset``: zip local file headers one after
the other, each entry checked as the ingest checks it (``sources.entry_refusal``, the size cap
for in-memory entries, a bounded inflate, its CRC), parsed, hashed and written as a blob. Each
batch is committed as ``PreparedEntry`` rows with the new ``follow_offset``; a follower that
finds the offset moved by another one discards its batch.

The follower only saves work, it decides nothing: no instance, study or report line is made
from what it read. The ingest job reads the zip's central directory as always, applies every
check to every entry, and uses a prepared entry only where the directory names the same entry
(local header offset, name, CRC-32, sizes); anything else is extracted and parsed again. The
job stops the follower when it starts (``prepared_for_job``) and deletes the prepared rows and
the blobs no instance took (``prepared_discard``) when it ends, as do termination and expiry.

The follower stops (``follow_done``) where the stream is not a plain zip it can read ahead:
no local header signature (not a zip, or the central directory), an entry with a data
descriptor (sizes after the data), encryption, a method other than stored or deflated, ZIP64
sizes, or more entries or bytes than a zip may hold. The job then does the rest as usual.
With Celery eager (the embedded default) nothing follows: the task would run inside the PATCH.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum

from apps.imaging import dicom, sources
from apps.imaging.blobs import (
    BATCH_BYTES,
    BATCH_FILES,
    PARALLEL_WRITES,
    blob_files_delete,
    blob_files_kept_if_committed,
    blobs_found,
    blobs_lock,
    blobs_record,
    blobs_unreferenced_delete,
    blobs_write_finish,
    blobs_write_start,
)
from apps.imaging.checksums import crc32
from apps.imaging.models import Blob, PreparedEntry, Upload, UploadState

logger = logging.getLogger(__name__)

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # signature, version, flags, method, time, date, CRC, sizes, lengths
LOCAL_SIGNATURE = b"PK\x03\x04"
NAME_MAX = PreparedEntry._meta.get_field("name").max_length  # a longer name is left to the job
DATA_DESCRIPTOR, ENCRYPTED, UTF8 = 0x8, 0x1, 0x800
STORED, DEFLATED = 0, 8


def enabled() -> bool:
    return settings.LIGHTBOX_INGEST_FOLLOW and not settings.CELERY_TASK_ALWAYS_EAGER


def follow_queue(upload: Upload) -> None:
    """After an append: queue the follower if the upload is not complete (once committed) and
    no follower task is queued already. A run reads what arrived before it begins and while it
    reads (see ``_arrived``), so one queued task covers every append until it begins: without
    this, each append of a fast upload queued a task of its own, and all but the first found
    nothing to do, each taking the worker's turn before the ingest job. A task that fails or is
    lost leaves the flag set: following stops, and the ingest job does the rest."""
    if not enabled() or upload.follow_done or (upload.length is not None and upload.offset >= upload.length):
        return
    if Upload.objects.filter(pk=upload.pk, follow_queued=False, follow_done=False).update(follow_queued=True):
        transaction.on_commit(partial(_send, upload.pk))


def _send(upload_id: int) -> None:
    from apps.imaging.tasks import upload_follow_task

    try:
        upload_follow_task.delay(upload_id)
    except Exception as exc:  # noqa: BLE001 - a broker that cannot be reached must not fail the append
        Upload.objects.filter(pk=upload_id).update(follow_queued=False)  # the next append tries again
        logger.warning("upload %s: follower not queued (%s); the ingest job will do it all", upload_id,
                       type(exc).__name__)


def _arrived(upload: Upload, committed: int) -> int | None:
    """Where the received bytes end now (None once following is over). When nothing more has
    arrived, the run is about to end: from then on no follower task counts as queued, and the
    offset is read again, so that an append committed before that is read by this run and one
    committed after it queues the next task. Appends during the run queue none (the task that
    began it still counts as queued): the run reads their bytes itself."""
    followed = Upload.objects.filter(pk=upload.pk, follow_done=False).values_list("offset", flat=True)
    if (arrived := followed.first()) != committed:
        return arrived
    Upload.objects.filter(pk=upload.pk).update(follow_queued=False)
    return followed.first()  # a queryset runs again on each first()


# --- headers as JSON ------------------------------------------------------------------------------

def header_to_json(header: dicom.DicomHeader) -> dict:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in dataclasses.asdict(header).items()}


def header_from_json(data: dict) -> dicom.DicomHeader:
    values = dict(data)
    for name in ("study_date", "patient_birth_date"):
        if values.get(name):
            values[name] = date.fromisoformat(values[name])
    values["warnings"] = tuple(values.get("warnings") or ())  # absent from an entry prepared by an older release
    return dicom.DicomHeader(**values)


class _Stop(Exception):
    """The follower leaves the rest of this upload to the job."""


def zip_name(raw: bytes, flags: int) -> str:
    """An entry name as Python's zipfile reads it (UTF-8 if flagged, else CP437; cut at NUL)."""
    try:
        name = raw.decode("utf-8" if flags & UTF8 else "cp437")
    except UnicodeDecodeError:
        raise _Stop("an entry name that is not UTF-8 (the job reports the archive)") from None
    return name.split("\0", 1)[0]


# --- following ------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Prepared:
    offset: int
    name: str
    crc32: int
    compress_size: int
    file_size: int
    data: bytes  # let go (b"") once its blob's write is queued
    header: dicom.DicomHeader
    sha256: str = ""


def _inflate(raw: bytes, method: int, size: int) -> bytes | None:
    """The entry's bytes, never more than ``size`` + 1 of them (a bomb cannot inflate past it)."""
    if method == STORED:
        return raw
    inflater = zlib.decompressobj(-15)
    try:
        return inflater.decompress(raw, size + 1)
    except zlib.error:
        return None


def _entry(fh, pos: int, committed: int) -> tuple[int, _Prepared | None] | None:
    """Read the entry whose local header is at ``pos``: None if it is not all received yet,
    else (where the next header starts, the prepared entry or None if left to the job).
    Raises _Stop where the rest cannot be read ahead."""
    fh.seek(pos)
    head = fh.read(LOCAL_HEADER.size)
    if len(head) < LOCAL_HEADER.size:
        return None
    signature, _v, flags, method, _t, _d, crc, csize, usize, nlen, elen = LOCAL_HEADER.unpack(head)
    if signature != LOCAL_SIGNATURE:
        raise _Stop("no local header (not a zip, or its central directory)")
    if flags & (DATA_DESCRIPTOR | ENCRYPTED) or method not in (STORED, DEFLATED) or 0xFFFFFFFF in (csize, usize):
        raise _Stop("an entry that cannot be read ahead")
    data_at = pos + LOCAL_HEADER.size + nlen + elen
    end = data_at + csize
    if end > committed:
        return None
    name = zip_name(fh.read(nlen), flags)
    if (name.endswith("/") or max(usize, csize) > sources.MEMORY_MAX  # never read a large entry into memory
            or len(name) > NAME_MAX or sources.entry_refusal(name, flags, usize, csize)):
        return end, None  # a folder, or an entry the job reports or extracts itself
    fh.seek(data_at)
    data = _inflate(fh.read(csize), method, usize)
    if data is None or len(data) != usize or crc32(data) != crc:
        return end, None  # damaged: the job reports it
    try:
        header = dicom.parse(io.BytesIO(data))
    except dicom.DicomError:
        return end, None  # the job reports why
    if header.is_dicomdir:
        return end, None
    return end, _Prepared(offset=pos, name=name, crc32=crc, compress_size=csize, file_size=usize, data=data,
                          header=header)


@dataclasses.dataclass
class _Batch:
    """Entries read from ``start`` to ``end``, their new blobs being written."""

    start: int
    end: int
    items: list[_Prepared]
    found: dict[str, Blob]
    writes: list[Future[Blob]]


def _commit_start(pool: ThreadPoolExecutor, start: int, end: int, batch: list[_Prepared]) -> _Batch:
    """Hash the batch, look its blobs up and start writing the new ones on ``pool``: the next
    batch is read meanwhile. An entry's bytes are then held only by its write, so memory goes
    back as each write ends rather than when the batch is committed."""
    for item in batch:
        item.sha256 = hashlib.sha256(item.data).hexdigest()
    found = blobs_found(item.sha256 for item in batch)
    writes = blobs_write_start({i.sha256: i.data for i in batch if i.sha256 not in found}, pool)
    for item in batch:
        item.data = b""
    return _Batch(start=start, end=end, items=batch, found=found, writes=writes)


def _commit_finish(upload: Upload, batch: _Batch) -> bool:
    """Record the batch with the new follow offset once its blobs are written, unless another
    follower moved the offset or the job started meanwhile (then its work is dropped)."""
    new = blobs_write_finish(batch.writes)
    found = dict(batch.found)
    try:
        with blob_files_kept_if_committed(new), transaction.atomic():
            found.update((b.sha256, b) for b in blobs_record(new))
            PreparedEntry.objects.bulk_create([
                PreparedEntry(upload=upload, offset=i.offset, name=i.name, crc32=i.crc32,
                              compress_size=i.compress_size, file_size=i.file_size, sha256=i.sha256,
                              blob=found[i.sha256], header=header_to_json(i.header))
                for i in batch.items])
            # last, so that the upload's row is locked only for the commit (appends update it too)
            moved = Upload.objects.filter(pk=upload.pk, follow_offset=batch.start, follow_done=False).update(
                follow_offset=batch.end)
            if not moved:
                raise _Stop("another follower, or the job, went on")
            # after the upload's row, as prepared_discard locks them; the rows above point at
            # these blobs only once committed (deferred foreign keys)
            if blobs_lock(batch.found):
                raise _Stop("a blob it found was deleted meanwhile: the job stores those bytes")
    except _Stop:
        return False
    return True


class _Run:
    """One follower run: batch N+1 is read and parsed while batch N's blobs are written, and
    batches are committed in order."""

    def __init__(self, upload: Upload, start: int):
        self.upload = upload
        self.start = start        # where the batch being read begins
        self.batch: list[_Prepared] = []
        self.held = 0
        self.prepared = 0
        self.writing: _Batch | None = None
        self.pool = ThreadPoolExecutor(max_workers=PARALLEL_WRITES, thread_name_prefix="follow-write")

    def add(self, item: _Prepared) -> None:
        self.batch.append(item)
        self.held += item.file_size

    def full(self) -> bool:
        return len(self.batch) >= BATCH_FILES or self.held >= BATCH_BYTES

    def _finish_writing(self) -> bool:
        writing, self.writing = self.writing, None
        if writing is None:
            return True
        if not _commit_finish(self.upload, writing):
            return False
        self.prepared += len(writing.items)
        return True

    def hand_over(self, end: int) -> bool:
        """Commit the batch being written, then start writing the one read up to ``end``.
        False if another follower or the job went on (stop: nothing more is recorded)."""
        if not self._finish_writing():
            return False
        self.writing = _commit_start(self.pool, self.start, end, self.batch)
        self.start, self.batch, self.held = end, [], 0
        return True

    def finish(self, end: int, *, empty_too: bool) -> bool:
        """Commit everything read up to ``end`` (with no entry in it only if ``empty_too``)."""
        if (self.batch or (empty_too and end != self.start)) and not self.hand_over(end):
            return False
        return self._finish_writing()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def upload_follow(*, upload_id: int) -> int:
    """Prepare the entries of the upload received so far. Returns how many were prepared."""
    from apps.imaging.uploads import upload_open

    upload = Upload.objects.filter(pk=upload_id, follow_done=False).exclude(
        state__in=[UploadState.TERMINATED, UploadState.EXPIRED]).first()
    if upload is None:
        return 0
    committed, pos = upload.offset, upload.follow_offset
    limit_files, limit_bytes = settings.LIGHTBOX_ZIP_MAX_ENTRIES, settings.LIGHTBOX_ZIP_MAX_TOTAL_BYTES
    so_far = upload.prepared.aggregate(n=Count("id"), total=Sum("file_size"))
    count, total = so_far["n"], so_far["total"] or 0
    run = _Run(upload, pos)
    try:
        while True:
            with upload_open(upload) as fh:  # its length is the committed offset
                while (step := _entry(fh, pos, committed)) is not None:
                    pos, item = step
                    if item is not None:
                        count, total = count + 1, total + item.file_size
                        if count > limit_files or total > limit_bytes:
                            raise _Stop("more than a zip may hold")
                        run.add(item)
                    if run.full() and not run.hand_over(pos):
                        return run.prepared
            # bytes that arrived meanwhile are read now, not by the task their append queued
            # (it finds them done): no wait for a task between two chunks
            arrived = _arrived(upload, committed)
            if arrived is None or arrived == committed:
                break
            upload.offset = committed = arrived
        run.finish(pos, empty_too=True)
        return run.prepared
    except _Stop as stop:
        run.finish(pos, empty_too=False)
        Upload.objects.filter(pk=upload.pk).update(follow_done=True)
        logger.info("upload %s: follower stopped: %s", upload.public_id, stop)
        return run.prepared
    finally:
        run.close()


# --- the job's side -------------------------------------------------------------------------------

def prepared_for_job(upload: Upload) -> dict[tuple[int, str, int, int, int], PreparedEntry]:
    """Stop following the upload (the job reads it now) and return what was prepared, keyed as
    ``sources.Entry.zip_key``."""
    Upload.objects.filter(pk=upload.pk).update(follow_done=True)
    return {(p.offset, p.name, p.crc32, p.compress_size, p.file_size): p
            for p in PreparedEntry.objects.filter(upload=upload).select_related("blob")}


def prepared_discard(upload: Upload) -> int:
    """Drop the upload's prepared entries and the blobs no instance took; stop following.
    Returns the number of blobs deleted."""
    with transaction.atomic():
        Upload.objects.filter(pk=upload.pk).update(follow_done=True)  # waits for a follower's commit
        rows = PreparedEntry.objects.filter(upload=upload)
        blob_ids = set(rows.values_list("blob_id", flat=True))
        rows.delete()
        orphans = blobs_unreferenced_delete(blob_ids)
    blob_files_delete(orphans)
    return len(orphans)
