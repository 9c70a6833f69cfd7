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
from datetime import date
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum

from apps.imaging import dicom, sources
from apps.imaging.blobs import (
    blob_files_delete,
    blobs_found,
    blobs_record,
    blobs_unreferenced_delete,
    blobs_write_many,
)
from apps.imaging.models import PreparedEntry, Upload, UploadState

logger = logging.getLogger(__name__)

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # signature, version, flags, method, time, date, CRC, sizes, lengths
LOCAL_SIGNATURE = b"PK\x03\x04"
DATA_DESCRIPTOR, ENCRYPTED, UTF8 = 0x8, 0x1, 0x800
STORED, DEFLATED = 0, 8
#: a batch is committed at once; its entries are held in memory until then (each at most
#: sources.MEMORY_MAX, larger ones are left to the job)
BATCH_FILES, BATCH_BYTES = 64, 32 * 1024 * 1024


def enabled() -> bool:
    return settings.LIGHTBOX_INGEST_FOLLOW and not settings.CELERY_TASK_ALWAYS_EAGER


def follow_queue(upload: Upload) -> None:
    """After an append: queue the follower if the upload is not complete (once committed)."""
    if not enabled() or upload.follow_done or (upload.length is not None and upload.offset >= upload.length):
        return
    transaction.on_commit(partial(_send, upload.pk))


def _send(upload_id: int) -> None:
    from apps.imaging.tasks import upload_follow_task

    try:
        upload_follow_task.delay(upload_id)
    except Exception as exc:  # noqa: BLE001 - a broker that cannot be reached must not fail the append
        logger.warning("upload %s: follower not queued (%s); the ingest job will do it all", upload_id,
                       type(exc).__name__)


# --- headers as JSON ------------------------------------------------------------------------------

def header_to_json(header: dicom.DicomHeader) -> dict:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in dataclasses.asdict(header).items()}


def header_from_json(data: dict) -> dicom.DicomHeader:
    values = dict(data)
    for name in ("study_date", "patient_birth_date"):
        if values.get(name):
            values[name] = date.fromisoformat(values[name])
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
    data: bytes
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
            or sources.entry_refusal(name, flags, usize, csize)):
        return end, None  # a folder, or an entry the job reports or extracts itself
    fh.seek(data_at)
    data = _inflate(fh.read(csize), method, usize)
    if data is None or len(data) != usize or zlib.crc32(data) != crc:
        return end, None  # damaged: the job reports it
    try:
        header = dicom.parse(io.BytesIO(data))
    except dicom.DicomError:
        return end, None  # the job reports why
    if header.is_dicomdir:
        return end, None
    return end, _Prepared(offset=pos, name=name, crc32=crc, compress_size=csize, file_size=usize, data=data,
                          header=header)


def _commit(upload: Upload, start: int, end: int, batch: list[_Prepared]) -> bool:
    """Store the batch's new blobs and record it with the new follow offset, unless another
    follower moved the offset or the job started meanwhile (then its work is dropped)."""
    for item in batch:
        item.sha256 = hashlib.sha256(item.data).hexdigest()
    found = blobs_found(item.sha256 for item in batch)
    new = blobs_write_many({i.sha256: i.data for i in batch if i.sha256 not in found})
    try:
        with transaction.atomic():
            found.update((b.sha256, b) for b in blobs_record(new))
            PreparedEntry.objects.bulk_create([
                PreparedEntry(upload=upload, offset=i.offset, name=i.name, crc32=i.crc32,
                              compress_size=i.compress_size, file_size=i.file_size, sha256=i.sha256,
                              blob=found[i.sha256], header=header_to_json(i.header))
                for i in batch])
            # last, so that the upload's row is locked only for the commit (appends update it too)
            moved = Upload.objects.filter(pk=upload.pk, follow_offset=start, follow_done=False).update(
                follow_offset=end)
            if not moved:
                raise _Stop("another follower, or the job, went on")
    except _Stop:
        blob_files_delete(new)
        return False
    return True


def upload_follow(*, upload_id: int) -> int:
    """Prepare the entries of the upload received so far. Returns how many were prepared."""
    from apps.imaging.uploads import upload_open

    upload = Upload.objects.filter(pk=upload_id, follow_done=False).exclude(
        state__in=[UploadState.TERMINATED, UploadState.EXPIRED]).first()
    if upload is None:
        return 0
    committed, start = upload.offset, upload.follow_offset
    pos, prepared, held = start, 0, 0
    batch: list[_Prepared] = []
    limit_files, limit_bytes = settings.LIGHTBOX_ZIP_MAX_ENTRIES, settings.LIGHTBOX_ZIP_MAX_TOTAL_BYTES
    so_far = upload.prepared.aggregate(n=Count("id"), total=Sum("file_size"))
    count, total = so_far["n"], so_far["total"] or 0
    try:
        with upload_open(upload) as fh:  # its length is the committed offset
            while True:
                step = _entry(fh, pos, committed)
                if step is None:
                    break
                pos, item = step
                if item is not None:
                    count, total = count + 1, total + item.file_size
                    if count > limit_files or total > limit_bytes:
                        raise _Stop("more than a zip may hold")
                    batch.append(item)
                    held += item.file_size
                if len(batch) >= BATCH_FILES or held >= BATCH_BYTES:
                    if not _commit(upload, start, pos, batch):
                        return prepared
                    prepared, start, batch, held = prepared + len(batch), pos, [], 0
    except _Stop as stop:
        if batch and _commit(upload, start, pos, batch):
            prepared += len(batch)
        Upload.objects.filter(pk=upload.pk).update(follow_done=True)
        logger.info("upload %s: follower stopped: %s", upload.public_id, stop)
        return prepared
    if pos != start and _commit(upload, start, pos, batch):
        prepared += len(batch)
    return prepared


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
