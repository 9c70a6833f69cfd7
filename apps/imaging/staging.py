"""Encrypted staging files for tus uploads.

A tus upload grows by appends at arbitrary offsets, so it is staged with AES-256-CTR (a
seekable stream cipher) under a per-upload random key wrapped by the master key: nothing is
ever in clear on disk, and the file can be read from any offset. Staging files live in
LIGHTBOX_UPLOAD_DIR (outside the storage root); ingest copies their content into blobs and the
staging file is deleted afterwards. Integrity of staged bytes is the tus checksum's job; the
stored blobs are authenticated (AES-GCM).

A keystream is never used twice. Bytes cut off (a rollback: a chunk whose checksum or length was
wrong, or that went past the upload's length, or whose client went away; or bytes a writer that
died wrote past the committed offset) are written again under a new segment: the counter block
is the segment's nonce (8 bytes) then the block's index (8 bytes). The first segment's nonce is 0,
so a file never cut reads as files always did; each new one's is random, recorded with the offset
where it begins in a side file (``<name>.iv``, 16 bytes a record, on disk before a byte is written
under it) that the reader follows."""

from __future__ import annotations

import errno
import fcntl
import io
import os
import struct
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings

from apps.imaging import keys
from apps.imaging.directio import BUFFER, DirectReader, DirectWriter, fsync_paths

BLOCK = 16
#: one record of the side file: the offset a segment begins at, its nonce
SEGMENT = struct.Struct(">QQ")


#: the file the staging folder holds from when it was made (``staging_mark``): a folder without it
#: is not the one uploads were staged in (its volume not mounted, the empty mount point seen instead)
MARKER = ".lightbox-staging"


class StagingUnavailable(OSError):
    """The staging folder is not there, or is not the one uploads were staged in (no ``MARKER``):
    its volume is not mounted, say. The uploads' staging files are not known to be gone: each
    upload resumes once the folder is back."""


def staging_root() -> Path:
    """Where the staging folder should be (LIGHTBOX_UPLOAD_DIR), whether it is there or not."""
    return Path(settings.LIGHTBOX_UPLOAD_DIR)


def staging_dir() -> Path:
    """The staging folder, there and holding its ``MARKER`` (one stat); StagingUnavailable
    otherwise. Never made here: made again empty where its volume was missing, every upload's
    staging file was then gone, and the uploads were expired that would resume once the volume is
    back. A new folder is made and marked by ``staging_mark`` (``uploads.staging_ready`` decides
    when); one without its marker that holds files is the folder uploads were staged in before
    folders were marked, and is marked as it is."""
    path = staging_root()
    if not (path / MARKER).is_file():
        if not _holds_files(path):
            raise StagingUnavailable(errno.ENODEV, "the staging folder is not available")
        staging_mark()
    return path


def _holds_files(path: Path) -> bool:
    """Whether the folder is there and holds anything (a missing folder holds nothing)."""
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def staging_mark() -> Path:
    """Make the staging folder (if it is not there) and its ``MARKER``, both on disk. Only for a
    folder that uploads are to be staged in from now on (``uploads.staging_ready``)."""
    path = staging_root()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path / MARKER, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_paths(path)
    return path


def staging_path(name: str) -> Path:
    return staging_dir() / name


def staging_create(name: str) -> Path:
    """Create an empty staging file, its folder entry on disk before any byte is acknowledged
    (the offsets recorded later count on the file being there after a crash). In the staging
    folder as it is (StagingUnavailable when it is not there: ``staging_dir``)."""
    path = staging_path(name)
    path.touch(mode=0o600)
    fsync_paths(path.parent)
    return path


def new_key(aad: bytes) -> tuple[bytes, str, bytes]:
    key = os.urandom(32)
    kid, wrapped = keys.wrap_key(key, aad=aad)
    return key, kid, wrapped


def segments_path(path: Path) -> Path:
    return path.with_name(path.name + ".iv")


def segments_read(path: Path) -> list[tuple[int, int]]:
    """The staging file's segments, [(start, nonce)] by offset, from its side file's records in
    the order they were written: a record ends the segments from its offset on (the bytes there
    were cut off). A record cut short (a crash while it was written: no byte was written under
    it) is left out."""
    try:
        raw = segments_path(path).read_bytes()
    except FileNotFoundError:
        return [(0, 0)]
    segments = [(0, 0)]
    for at in range(0, len(raw) - len(raw) % SEGMENT.size, SEGMENT.size):
        start, nonce = SEGMENT.unpack_from(raw, at)
        while segments and segments[-1][0] >= start:
            segments.pop()
        segments.append((start, nonce))
    return segments


def _segment_record(path: Path, start: int) -> int:
    """A new segment from ``start`` on, recorded and on disk: its nonce."""
    nonce = int.from_bytes(os.urandom(SEGMENT.size // 2), "big") or 1  # 0 is the first segment's
    side = segments_path(path)
    fd = os.open(side, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        end = os.fstat(fd).st_size
        end -= end % SEGMENT.size  # a record cut short by a crash is written over
        os.pwrite(fd, SEGMENT.pack(start, nonce), end)
        os.ftruncate(fd, end + SEGMENT.size)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not end:
        fsync_paths(side.parent)
    return nonce


def _keystream_cipher(key: bytes, offset: int, nonce: int = 0):
    block, skip = divmod(offset, BLOCK)
    counter = (nonce << 64) | block
    enc = Cipher(algorithms.AES(key), modes.CTR(counter.to_bytes(16, "big"))).encryptor()
    if skip:
        enc.update(b"\0" * skip)
    return enc


class StagingWriter:
    """Appends plaintext at ``offset`` to an encrypted staging file (apps.imaging.directio:
    straight to the disk, not through the page cache, where the file system allows it).

    The file is locked (``flock``: one writer at a time, whichever process) before anything
    else. Without ``offset`` it is only locked, not touched: the caller reads the upload's
    offset again under the lock, then calls ``begin`` (or ``close``). A writer that cut the file
    back to an offset read before the lock destroyed the bytes the previous holder had just
    written and counted.

    The file is never made here (``staging_create`` makes it): one deleted since the caller
    looked (its upload cancelled or expired) raises FileNotFoundError, also when it is deleted
    while this writer waits for the lock. Opened with O_CREAT, a late writer made it again, an
    orphan holding the bytes of an upload that was gone."""

    def __init__(self, path: Path, key: bytes, offset: int | None = None, wait: float = 0):
        self._out: DirectWriter | None = None
        self._dirty = False
        self._written = False  # bytes written under the current segment's keystream
        self._key = key
        self._path = path
        self._fd = os.open(path, os.O_RDWR)
        self._stop = path.with_name(path.name + ".stop")
        # One writer at a time. A request that finds the file locked asks the holder to stop
        # (a request left waiting for the body of a connection that died: see stop_requested),
        # waits up to ``wait`` seconds, then raises BlockingIOError.
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                self._fail_if_deleted()  # checked after each touch: no stop request outlives the file
                if time.monotonic() >= deadline:
                    os.close(self._fd)
                    raise
                self._stop.touch()
                time.sleep(0.02)
        self._since = time.time()
        self._stop.unlink(missing_ok=True)
        self._fail_if_deleted()
        if offset is not None:
            try:
                self.begin(offset)
            except BaseException:
                self.close()
                raise

    def _fail_if_deleted(self) -> None:
        """FileNotFoundError, the file closed, once no name links to it (deleted: its upload
        was cancelled or expired), and the stop request this writer may have made again after
        the deletion removed."""
        if os.fstat(self._fd).st_nlink:
            return
        fd, self._fd = self._fd, -1
        os.close(fd)
        self._stop.unlink(missing_ok=True)
        raise FileNotFoundError(errno.ENOENT, "staging file deleted", str(self._path))

    def begin(self, offset: int) -> None:
        """Write from ``offset`` on: what the file holds past it (bytes never counted: a write
        cut short, a process that died) is cut off. Only with the lock held and ``offset``
        read under it."""
        segments = segments_read(self._path)
        if os.fstat(self._fd).st_size > offset or segments[-1][0] > offset:
            self._nonce = self._segment_start(offset)  # the bytes cut off had this keystream
        else:
            self._nonce = segments[-1][1]
        os.ftruncate(self._fd, offset)
        self._out = DirectWriter(self._fd, offset)
        self._enc = _keystream_cipher(self._key, offset, self._nonce)

    def _segment_start(self, offset: int) -> int:
        """A new segment from ``offset`` on, recorded before the bytes past it are cut off. A side
        file made again after the staging file was deleted (its upload cancelled meanwhile) goes."""
        nonce = _segment_record(self._path, offset)
        self._written = False
        if not os.fstat(self._fd).st_nlink:
            segments_path(self._path).unlink(missing_ok=True)
        return nonce

    def stop_requested(self) -> bool:
        """Another request for this upload waits for the lock (the client resumed elsewhere)."""
        try:
            return self._stop.stat().st_mtime >= self._since
        except FileNotFoundError:
            return False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        step = BUFFER // 2
        for at in range(0, len(view), step):
            piece = view[at:at + step]
            room = self._out.reserve(len(piece) + BLOCK - 1)  # what update_into asks for
            self._out.commit(self._enc.update_into(piece, room))
            self._dirty = self._written = True

    def rollback(self, offset: int) -> None:
        """Cut what was written past ``offset``; what is written next has a new keystream."""
        if self._written or os.fstat(self._fd).st_size > offset:
            self._nonce = self._segment_start(offset)
        self._out.reset(offset)
        self._enc = _keystream_cipher(self._key, offset, self._nonce)
        os.ftruncate(self._fd, offset)
        self._dirty = False

    def sync(self) -> None:
        """What was written is on disk. Nothing is written when nothing was (the file is not
        touched: its last block is not written again under a reader)."""
        if self._out is None or not self._dirty:
            return
        self._out.flush()
        os.fsync(self._fd)
        self._dirty = False

    def close(self) -> None:
        """Sync and unlock (closing the file releases the lock). Once only."""
        if self._fd < 0:
            return
        try:
            self.sync()
        finally:
            try:
                if self._out is not None:
                    self._out.close()
            finally:
                fd, self._fd = self._fd, -1
                os.close(fd)


class StagingReader(io.RawIOBase):
    """Plaintext view of a staging file; seekable. Read like it was written, not through the
    page cache where the file system allows it (apps.imaging.directio), with read-ahead."""

    def __init__(self, path: Path, key: bytes, length: int | None = None):
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._size = length if length is not None else os.fstat(self._fd).st_size
        self._in = DirectReader(self._fd, self._size)
        self._key = key
        self._segments = segments_read(path)  # those past the committed offset do not matter
        self._pos = 0
        self._dec = None
        self._dec_end = 0  # where the segment being read ends
        self.name = str(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        new = max(0, base + offset)
        if new != self._pos:
            self._dec = None
        self._pos = new
        return new

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        if self._dec is None or self._pos >= self._dec_end:
            self._dec = self._segment_cipher()
        n = min(n, self._dec_end - self._pos)
        if n >= 2 * BLOCK:  # update_into wants BLOCK - 1 bytes of room beyond its input
            n = min(n, len(buffer) - BLOCK + 1)
        data = self._in.read(self._pos, n)
        if len(buffer) >= len(data) + BLOCK - 1:
            got = self._dec.update_into(data, buffer)
        else:
            plain = self._dec.update(data)
            buffer[:len(plain)] = plain
            got = len(plain)
        self._pos += got
        return got

    def _segment_cipher(self):
        """The keystream at the position, in the segment holding it (``_dec_end``: where it ends)."""
        at = len(self._segments) - 1
        while self._segments[at][0] > self._pos:
            at -= 1
        nonce = self._segments[at][1]
        self._dec_end = self._segments[at + 1][0] if at + 1 < len(self._segments) else self._size
        return _keystream_cipher(self._key, self._pos, nonce)

    def close(self) -> None:
        if not self.closed:
            self._in.close()
            os.close(self._fd)
        super().close()
