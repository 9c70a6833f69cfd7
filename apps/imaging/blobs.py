"""The encrypted, content-addressed blob store. Public API (other apps call it):

- ``put_blob(fileobj, *, organization=None) -> Blob``
- ``open_blob(blob) -> BlobReader`` (a readable, seekable binary file object)
- ``blob_plaintext_size(blob) -> int``

Format: the plaintext is cut into ``chunk_size`` chunks; chunk *i* is stored as
AES-256-GCM(data key, nonce = 8-byte random prefix + 4-byte *i*, aad = *i* + last-chunk flag),
i.e. ``chunk_size + 16`` bytes for every chunk but the last, so any plaintext offset maps to a
chunk without reading the ones before it (Range requests), and truncation, reordering or
swapping of chunks fails authentication. The data key is random per blob and wrapped by a
master key (apps.imaging.keys) with the blob's sha256 as associated data.

Everything streams: memory use is a few chunks whatever the blob size. A blob is stored once:
``put_blob`` hashes the plaintext first and reuses an existing blob without writing a byte.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
import struct
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, wait
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import IO, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from apps.core import spool
from apps.imaging import keys
from apps.imaging.checksums import crc32
from apps.imaging.directio import fsync_paths
from apps.imaging.models import Blob

CHUNK_SIZE = 1024 * 1024
TAG = 16
READ_SIZE = 1024 * 1024
#: blob files written at a time (the follower's and the ingest job's writer threads): writing and
#: fsync release the GIL, and the disk takes several flushes at once. Encryption holds the GIL
#: (cryptography's AESGCM: two threads encrypt no faster than one), but at ~9 GB/s it is brief
PARALLEL_WRITES = 4
#: the ingest job and the follower write and commit files in batches of this many files or
#: bytes (their bytes held in memory until written; each file at most sources.MEMORY_MAX): one
#: transaction and a few queries per batch, and a crash loses at most the batch in progress
BATCH_FILES, BATCH_BYTES = 64, 32 * 1024 * 1024


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">I?", index, last)


def _nonce(prefix: bytes, index: int) -> bytes:
    return bytes(prefix) + struct.pack(">I", index)


BLOBS_FOLDER = "blobs"


def storage_name_for(sha256: str) -> str:
    return f"{BLOBS_FOLDER}/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _creates_exclusively(storage) -> bool:
    """File storage creates a file only where none is (O_EXCL) and takes another name if one
    is; object storage checks, then writes, and two writers may pass the check together."""
    return isinstance(storage, FileSystemStorage) and not getattr(storage, "_allow_overwrite", False)


def _name_to_write(sha256: str) -> str:
    """A blob file is never written over: a file already under the blob's name may be another
    writer's, recorded or about to be (its row holds the key that decrypts it). File storage
    takes another free name itself if this one is taken; on object storage each write gets its
    own name from the start."""
    name = storage_name_for(sha256)
    if _creates_exclusively(default_storage):
        return name
    return f"{name}_{get_random_string(7)}"


def _seekable(fileobj: IO[bytes]) -> bool:
    try:
        return bool(fileobj.seekable())
    except AttributeError:
        return False


def hash_stream(fileobj: IO[bytes]) -> tuple[str, int]:
    """sha256 and size of the rest of a stream, read in chunks."""
    digest, size = hashlib.sha256(), 0
    while chunk := fileobj.read(READ_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class _EncryptingReader(io.RawIOBase):
    """Reads plaintext from ``source`` and yields the encrypted chunk stream via ``read(n)``: a
    readable, non-seekable file object, as storage backends expect (django-storages' S3 backend
    asks whether it is closed and seekable before it uploads it)."""

    def __init__(self, source: IO[bytes], key: bytes, prefix: bytes, chunk_size: int):
        super().__init__()
        self._source, self._aead, self._prefix, self._chunk = source, AESGCM(key), prefix, chunk_size
        self._index = 0
        self._next = self._read_plain()
        self._done = False
        self._buffer = b""
        self._at = 0  # read position in _buffer (no copying of the rest on every read)

    def _read_plain(self) -> bytes:
        parts, want = [], self._chunk
        while want:
            part = self._source.read(want)
            if not part:
                break
            parts.append(part)
            want -= len(part)
        return b"".join(parts)

    def _encrypt_next(self) -> bytes:
        current = self._next
        following = self._read_plain() if len(current) == self._chunk else b""
        last = not following
        out = self._aead.encrypt(_nonce(self._prefix, self._index), current, _aad(self._index, last))
        self._index += 1
        self._next = following
        self._done = last
        return out

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, n: int | None = -1) -> bytes:
        n = -1 if n is None else n
        left = len(self._buffer) - self._at
        if (n < 0 or left < n) and not self._done:
            parts = [self._buffer[self._at:]]
            while not self._done and (n < 0 or left < n):
                chunk = self._encrypt_next()
                parts.append(chunk)
                left += len(chunk)
            self._buffer, self._at = b"".join(parts), 0
        if n < 0:
            n = len(self._buffer) - self._at
        out = self._buffer[self._at:self._at + n]
        self._at += len(out)
        return out


def _spool(fileobj: IO[bytes]) -> BinaryIO:
    """A non-seekable stream goes to an encrypted temporary file first (never to memory, never
    to the disk in clear: ``apps.core.spool``)."""
    out = spool.spool()
    try:
        shutil.copyfileobj(fileobj, out, READ_SIZE)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def put_blob(fileobj: IO[bytes], *, organization=None, sha256: str | None = None) -> Blob:
    """Store the bytes of ``fileobj`` (from its current position to the end) once, encrypted.

    If a blob with the same sha256 exists it is returned and nothing is written. ``sha256`` may
    be given when the caller already hashed the stream (it is trusted: pass only a digest you
    computed). ``organization`` is accepted for auditing callers and does not partition blobs."""
    del organization
    owned = None
    if not _seekable(fileobj):
        fileobj = owned = _spool(fileobj)
    try:
        start = fileobj.tell()
        if sha256 is None:
            sha256, size = hash_stream(fileobj)
        else:
            fileobj.seek(0, os.SEEK_END)
            size = fileobj.tell() - start
        existing = list(Blob.objects.filter(sha256=sha256)[:1])
        if existing:
            return existing[0]
        fileobj.seek(start)
        return _record(_write(fileobj, sha256, size))
    finally:
        if owned is not None:
            owned.close()


def _write(fileobj: IO[bytes], sha256: str, size: int) -> Blob:
    """Encrypt the rest of ``fileobj`` into storage; returns the (unsaved) Blob row for it."""
    data_key = AESGCM.generate_key(bit_length=256)
    prefix = os.urandom(8)
    key_id, wrapped = keys.wrap_key(data_key, aad=sha256.encode())
    name = _name_to_write(sha256)
    content = File(_EncryptingReader(fileobj, data_key, prefix, CHUNK_SIZE), name=os.path.basename(name))
    content.DEFAULT_CHUNK_SIZE = CHUNK_SIZE + TAG  # storage writes whole encrypted chunks
    try:
        stored = default_storage.save(name, content)
        _make_durable(stored)
    except FileNotFoundError:
        # the file went before this writer recorded it: a writer of the same bytes recorded its
        # own copy first and cleared the others (``_stale_copies_delete``). Recording this blob
        # takes that writer's row instead (``_kept_copy``), or fails if there is none.
        stored = ""
    return Blob(sha256=sha256, size=size, storage_name=stored, key_id=key_id, wrapped_key=wrapped,
                chunk_size=CHUNK_SIZE, nonce_prefix=prefix)


def _make_durable(name: str) -> None:
    """On local file storage, the blob file and the folder entries that lead to it reach the disk
    before the row that records the blob is committed (a crash cannot leave a recorded blob
    without its bytes, nor its bytes in a folder whose own entry was lost: a blob's folders are
    often new, and on a file system without a journal nothing orders their creation before the
    file's fsync). A folder with nothing unwritten costs a system call. Object storage has the
    object once the upload call returns."""
    try:
        path = default_storage.path(name)  # the storage's location joined with the name
    except NotImplementedError:
        return
    # folders are compared as written, not resolved: resolving each one (os.path.realpath, a
    # system call per path component) cost more than the fsyncs of clean folders
    root = os.path.abspath(default_storage.location)
    targets = [path]
    folder = os.path.dirname(path)
    while True:
        targets.append(folder)
        if folder == root or os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)
    fsync_paths(*targets)


def _stale_copies_delete(blob: Blob) -> None:
    """Delete the other files of this blob's bytes in its folder: left by a writer that died
    before recording them, or written by one that is about to find this row and delete its own.
    Called once the row is committed, never before: until then another writer may still win."""
    folder, own = posixpath.split(blob.storage_name)
    try:
        files = default_storage.listdir(folder)[1]
    except FileNotFoundError:
        return
    for name in files:
        if name.startswith(blob.sha256) and name != own:
            default_storage.delete(posixpath.join(folder, name))


def _recorded(blobs: list[Blob]) -> list[Blob]:
    """Rows just inserted. On file storage, a blob written under another name than its own (that
    one was taken) clears the stale copies once the caller's transaction commits. On object
    storage every write has its own name, so nothing tells of a stale copy without listing the
    folder: a killed writer's objects are left to ``blobs_orphans_delete`` (scheduled daily)."""
    if not _creates_exclusively(default_storage):
        return blobs
    for blob in blobs:
        if blob.storage_name != storage_name_for(blob.sha256):
            transaction.on_commit(partial(_stale_copies_delete, blob), robust=True)
    return blobs


def _stored_blob_files() -> Iterator[tuple[str, datetime]]:
    """Every file under ``blobs/`` in storage, with its modification time (UTC)."""
    bucket = getattr(default_storage, "bucket", None)
    if bucket is not None:  # object storage: one listing request per 1,000 objects
        location = (getattr(default_storage, "location", "") or "").strip("/")
        start = len(location) + 1 if location else 0
        for obj in bucket.objects.filter(Prefix=default_storage._normalize_name(BLOBS_FOLDER + "/")):
            yield obj.key[start:], obj.last_modified
        return
    root = default_storage.path(BLOBS_FOLDER)
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                modified = datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)
            except FileNotFoundError:
                continue
            yield os.path.relpath(path, default_storage.location).replace(os.sep, "/"), modified


# How old an unnamed blob file must be before the sweep deletes it: a write in progress is
# minutes old at most. The daily task and `manage.py blobs_sweep` both default to it.
ORPHAN_MIN_AGE = timedelta(hours=24)


def blobs_orphans_delete(*, older_than: timedelta = ORPHAN_MIN_AGE) -> int:
    """Delete stored blob files that no Blob row names and that were last written more than
    ``older_than`` ago: left by a writer killed between its write and its commit. A write in
    progress is minutes old at most, so it is never taken. Returns how many were deleted."""
    cutoff = timezone.now() - older_than
    deleted = 0

    def sweep(page: list[tuple[str, datetime]]) -> int:
        known = set(Blob.objects.filter(storage_name__in=[name for name, _ in page])
                    .values_list("storage_name", flat=True))
        gone = [name for name, modified in page if name not in known and modified < cutoff]
        for name in gone:
            default_storage.delete(name)
        return len(gone)

    page: list[tuple[str, datetime]] = []
    for item in _stored_blob_files():
        page.append(item)
        if len(page) == 1000:
            deleted, page = deleted + sweep(page), []
    return deleted + (sweep(page) if page else 0)


def _cleared(blob: Blob) -> bool:
    """A blob written by ``_write`` whose file another writer cleared before it was recorded."""
    return not blob.storage_name


def _stored_row(sha256: str) -> Blob | None:
    """The stored row of these bytes, locked like a found blob (``blobs_lock``) when in a
    transaction: a deletion (``blobs_unreferenced_delete``) then waits for its commit and sees
    the rows it points at the blob."""
    rows = Blob.objects.filter(sha256=sha256)
    if transaction.get_connection().in_atomic_block:
        rows = rows.select_for_update()
    return rows.first()


def _kept_copy(blob: Blob) -> Blob:
    """The row of the writer that cleared this blob's file (it commits before it clears), locked
    like a found blob when in a transaction. Without that row the file was lost some other way:
    a storage error, and the caller's task retries."""
    kept = _stored_row(blob.sha256)
    if kept is None:
        raise FileNotFoundError(f"the file of blob {blob.sha256[:12]} went before it was recorded")
    return kept


def _record(blob: Blob) -> Blob:
    if _cleared(blob):
        return _kept_copy(blob)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                blob.save(force_insert=True)
        except IntegrityError:
            # another writer stored the same bytes at the same time: keep theirs, locked (ours has
            # its own name, so this deletes only our file)
            kept = _stored_row(blob.sha256)
            if kept is None:
                continue  # theirs was deleted since: ours is recorded after all
            default_storage.delete(blob.storage_name)
            return kept
        return _recorded([blob])[0]
    raise RuntimeError("a blob was deleted three times while being recorded")


def blob_write(source: IO[bytes] | bytes, sha256: str) -> Blob:
    """Encrypt a plaintext (bytes, or a seekable file from its current position) into storage
    and return its Blob row, not yet saved (``blobs_record`` saves it). Touches no database,
    so it may run on another thread. ``sha256`` is the caller's digest of these very bytes."""
    if isinstance(source, bytes | bytearray | memoryview):
        return _write(io.BytesIO(source), sha256, len(source))
    start = source.tell()
    size = source.seek(0, os.SEEK_END) - start
    source.seek(start)
    return _write(source, sha256, size)


def blobs_write_start(sources: dict[str, bytes | IO[bytes]], pool: Executor) -> list[Future[Blob]]:
    """Start ``blob_write`` for each ``{sha256: plaintext}`` on ``pool`` (its threads write
    several at a time); ``blobs_write_finish`` collects them."""
    return [pool.submit(blob_write, source, sha256) for sha256, source in sources.items()]


def blobs_write_finish(futures: list[Future[Blob]]) -> list[Blob]:
    """Wait for writes begun by ``blobs_write_start``. All or nothing: if one failed, the files
    the others wrote are deleted and its error is raised."""
    wait(futures)
    errors = [future.exception() for future in futures if future.exception() is not None]
    written = [future.result() for future in futures if future.exception() is None]
    if errors:
        blob_files_delete(written)
        raise errors[0]
    return written


@contextmanager
def blob_files_kept_if_committed(written: list[Blob]) -> Iterator[list[Blob]]:
    """Around the transaction that records blobs written by ``blobs_write_start``: if it does
    not commit (the block raises), their files are deleted, since no row holds their keys. The
    ingest job and the follower record every batch this way. A process killed before its commit
    cannot clean up: on file storage the next writer of the same bytes clears those files
    (``_recorded``); the daily ``blobs_orphans_delete`` takes any still left."""
    try:
        yield written
    except BaseException:
        blob_files_delete(written)
        raise


def blobs_found(sha256s: Iterable[str]) -> dict[str, Blob]:
    """The stored blobs among these digests (one query)."""
    return {b.sha256: b for b in Blob.objects.filter(sha256__in=list(set(sha256s)))}


def _rows_locked(pks: Iterable[int]):
    """These blob rows, locked (SELECT ... FOR UPDATE) always in primary-key order, so that two
    transactions locking overlapping sets wait for each other instead of deadlocking."""
    return Blob.objects.select_for_update().filter(pk__in=list(pks)).order_by("pk")


def blobs_lock(found: dict[str, Blob]) -> set[str]:
    """In the transaction that will point rows at blobs looked up before it (``blobs_found``):
    lock them, so that a deletion (``blobs_unreferenced_delete``) waits for this commit and then
    sees the new rows. Returns the sha256s of those deleted since the lookup: the caller stores
    those bytes again, or gives the batch up."""
    if not found:
        return set()
    kept = _rows_locked(b.pk for b in found.values()).values_list("sha256", flat=True)
    return set(found) - set(kept)


def put_blob_locked(fileobj: IO[bytes], *, sha256: str | None = None) -> Blob:
    """``put_blob`` in the transaction that points a row at the blob (attachments, rendition
    files, de-identified files): the blob row is locked (``blobs_lock``), so that a deletion
    (``blobs_unreferenced_delete``) waits for the commit and then sees the new row. If a
    deletion took the blob that ``put_blob`` found before the lock, the bytes are stored again.
    The ingest does the same for a batch at a time (``blobs_lock`` in ``services``/``follow``).
    Should the transaction roll back after new bytes were written, their file is left to the
    daily ``blobs_orphans_delete``."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("put_blob_locked runs in the transaction that points a row at the blob")
    owned = None
    if not _seekable(fileobj):
        fileobj = owned = _spool(fileobj)
    try:
        start = fileobj.tell()
        for _attempt in range(3):
            blob = put_blob(fileobj, sha256=sha256)
            if not blobs_lock({blob.sha256: blob}):
                return blob
            fileobj.seek(start)  # deleted meanwhile: store the bytes again
        raise RuntimeError("a blob was deleted three times while being stored")
    finally:
        if owned is not None:
            owned.close()


def content_fields(data: bytes) -> dict:
    """The fields of a row that points at a file of ``data`` (its ``sha256``, ``crc32`` and
    ``bytes``), and the bytes themselves as ``content``, for ``row_with_content_create``."""
    return {"content": data, "sha256": hashlib.sha256(data).hexdigest(), "crc32": crc32(data), "bytes": len(data)}


def row_with_content_create(model: type[models.Model], **fields) -> models.Model | None:
    """Insert a row that may point at a file given as ``content`` (``content_fields``): the bytes
    are stored with ``put_blob_locked`` in the row's transaction, so no deletion takes the blob
    before the row points at it (rendition files, de-identified files). None when the row's
    unique constraint says another run made it meanwhile."""
    content = fields.pop("content", None)
    try:
        with transaction.atomic():
            if content is not None:
                fields["blob"] = put_blob_locked(io.BytesIO(content), sha256=fields["sha256"])
            return model.objects.create(**fields)
    except IntegrityError:
        return None


def blobs_record(blobs: list[Blob]) -> list[Blob]:
    """Save the rows of blobs written by ``blob_write``, at once; when a concurrent writer
    stored some of the same bytes meanwhile, one by one (theirs is kept, ours deleted)."""
    kept = [_kept_copy(blob) for blob in blobs if _cleared(blob)]
    blobs = [blob for blob in blobs if not _cleared(blob)]
    if not blobs:
        return kept
    try:
        with transaction.atomic():
            return kept + _recorded(Blob.objects.bulk_create(blobs))
    except IntegrityError:
        return kept + [_record(blob) for blob in blobs]


def blobs_unreferenced_delete(blob_ids: Iterable[int]) -> list[Blob]:
    """Delete the rows of those of these blobs that no row of any model points at any more
    (instances, rendition files, exports, prepared entries...). Call it in a transaction.
    Returns them: once the caller's transaction is over, ``blob_files_delete`` removes their
    stored files."""
    from django.db.models import ForeignObjectRel

    blob_ids = set(blob_ids)
    if not blob_ids:
        return []
    # first lock the rows: an ingest that took some of them (``blobs_lock``) commits before the
    # references below are read, so they include its rows
    blob_ids = set(_rows_locked(blob_ids).values_list("pk", flat=True))
    unreferenced = Blob.objects.filter(pk__in=blob_ids)
    for relation in Blob._meta.get_fields(include_hidden=True):
        if isinstance(relation, ForeignObjectRel):
            field = relation.field
            users = field.model._base_manager.filter(**{f"{field.name}__in": blob_ids}).values(field.attname)
            unreferenced = unreferenced.exclude(pk__in=users)
    orphans = list(unreferenced)
    Blob.objects.filter(pk__in=[b.pk for b in orphans]).delete()
    return orphans


def blob_files_delete(blobs: Iterable[Blob]) -> None:
    for blob in blobs:
        if not _cleared(blob):
            default_storage.delete(blob.storage_name)


def blob_plaintext_size(blob: Blob) -> int:
    return blob.size


def _open_raw(name: str, offset: int) -> IO[bytes]:
    """The stored (encrypted) bytes from ``offset``, streamed: a ranged GET on S3-compatible
    storage (django-storages' S3File would buffer the whole object), a seek on files."""
    bucket = getattr(default_storage, "bucket", None)
    if bucket is not None:
        obj = bucket.Object(default_storage._normalize_name(name))
        return obj.get(Range=f"bytes={offset}-")["Body"]
    fh = default_storage.open(name, "rb")
    fh.seek(offset)
    return fh


class BlobReader(io.RawIOBase):
    """Decrypts a blob chunk by chunk; seekable (a seek re-opens at the right chunk)."""

    def __init__(self, blob: Blob):
        super().__init__()
        self.blob = blob
        self.name = blob.sha256
        self._size = blob.size
        self._chunk = blob.chunk_size
        self._aead = AESGCM(keys.unwrap_key(blob.key_id, blob.wrapped_key, aad=blob.sha256.encode()))
        self._prefix = bytes(blob.nonce_prefix)
        self._last_index = max(0, (self._size - 1) // self._chunk) if self._size else 0
        self._pos = 0
        self._raw: IO[bytes] | None = None
        self._raw_index = -1   # index of the next chunk the raw stream would deliver
        self._plain = b""       # decrypted chunk at self._plain_index
        self._plain_index = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _load(self, index: int) -> bytes:
        if index == self._plain_index:
            return self._plain
        if self._raw is None or self._raw_index != index:
            self._close_raw()
            self._raw = _open_raw(self.blob.storage_name, index * (self._chunk + TAG))
            self._raw_index = index
        want = self._chunk + TAG
        parts = []
        while want:
            part = self._raw.read(want)
            if not part:
                break
            parts.append(part)
            want -= len(part)
        last = index == self._last_index
        self._plain = self._aead.decrypt(_nonce(self._prefix, index), b"".join(parts), _aad(index, last))
        self._plain_index = index
        self._raw_index = index + 1
        return self._plain

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        index, within = divmod(self._pos, self._chunk)
        plain = self._load(index)
        n = min(len(buffer), len(plain) - within)
        buffer[:n] = plain[within:within + n]
        self._pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._size - self._pos
        out = bytearray()
        while len(out) < n:
            buf = bytearray(min(n - len(out), self._chunk))
            got = self.readinto(buf)
            if not got:
                break
            out += buf[:got]
        return bytes(out)

    def _close_raw(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def close(self) -> None:
        self._close_raw()
        super().close()


def iter_blob(blob: Blob, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The plaintext of ``blob`` from ``offset`` (``length`` bytes, or to the end) as decrypted
    chunks, for streaming responses: each stored chunk is read into one reused buffer and
    decrypted once, with no further copies (BlobReader copies to serve arbitrary reads).
    Authenticated like ``open_blob``."""
    end = blob.size if length is None else min(blob.size, offset + length)
    if offset >= end:
        return
    aead = AESGCM(keys.unwrap_key(blob.key_id, blob.wrapped_key, aad=blob.sha256.encode()))
    prefix, chunk = bytes(blob.nonce_prefix), blob.chunk_size
    last_index = max(0, (blob.size - 1) // chunk)
    index = offset // chunk
    raw = _open_raw(blob.storage_name, index * (chunk + TAG))
    buffer = bytearray(chunk + TAG)
    view = memoryview(buffer)
    try:
        pos = index * chunk
        while pos < end:
            got = 0
            while got < len(buffer):
                part = raw.readinto(view[got:]) if hasattr(raw, "readinto") else None
                if part is None:
                    data = raw.read(len(buffer) - got)
                    part = len(data)
                    view[got:got + part] = data
                if not part:
                    break
                got += part
            plain = aead.decrypt(_nonce(prefix, index), view[:got], _aad(index, index == last_index))
            low, high = max(offset - pos, 0), min(end - pos, len(plain))
            yield plain if (low, high) == (0, len(plain)) else plain[low:high]
            pos += len(plain)
            index += 1
    finally:
        view.release()
        raw.close()


def open_blob(blob: Blob) -> BlobReader:
    """A readable, seekable binary file object over the plaintext of ``blob``; decrypts chunk
    by chunk and raises ``cryptography.exceptions.InvalidTag`` if stored bytes were altered."""
    return BlobReader(blob)


class AlteredBlobRead(InvalidTag):
    """``InvalidTag`` (a stored blob's bytes were altered) raised by a read that knows whose
    stored file it was: ``instance``, the image (``apps.imaging.models.Instance``) whose original
    or rendition it is, for the caller to record (``apps.imaging.services.blob_integrity_failed``).
    Caught wherever ``InvalidTag`` is."""

    def __init__(self, instance) -> None:
        super().__init__(f"stored file of instance {getattr(instance, 'public_id', '?')} failed its integrity check")
        self.instance = instance


def blob_rewrap(blob: Blob, *, key_id: str | None = None) -> bool:
    """Re-wrap the blob's data key with the current (or named) master key; the data stays as it
    is. Returns False when it was already wrapped with that key."""
    target = key_id or keys.current_key_id()
    if blob.key_id == target:
        return False
    data_key = keys.unwrap_key(blob.key_id, blob.wrapped_key, aad=blob.sha256.encode())
    kid, wrapped = keys.wrap_key(data_key, aad=blob.sha256.encode(), key_id=target)
    updated = Blob.objects.filter(pk=blob.pk, key_id=blob.key_id).update(key_id=kid, wrapped_key=wrapped)
    return bool(updated)
