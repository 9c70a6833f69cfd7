"""Encrypted staging files for tus uploads.

A tus upload grows by appends at arbitrary offsets, so it is staged with AES-256-CTR (a
seekable stream cipher) under a per-upload random key wrapped by the master key: nothing is
ever in clear on disk, and the file can be read from any offset. Staging files live in
LIGHTBOX_UPLOAD_DIR (outside the storage root); ingest copies their content into blobs and the
staging file is deleted afterwards. Integrity of staged bytes is the tus checksum's job; the
stored blobs are authenticated (AES-GCM)."""

from __future__ import annotations

import fcntl
import io
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings

from apps.imaging import keys
from apps.imaging.directio import BUFFER, DirectReader, DirectWriter, fsync_paths

BLOCK = 16


def staging_dir() -> Path:
    path = Path(settings.LIGHTBOX_UPLOAD_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def staging_path(name: str) -> Path:
    return staging_dir() / name


def staging_create(name: str) -> Path:
    """Create an empty staging file, its folder entry on disk before any byte is acknowledged
    (the offsets recorded later count on the file being there after a crash)."""
    path = staging_path(name)
    path.touch(mode=0o600)
    fsync_paths(path.parent)
    return path


def new_key(aad: bytes) -> tuple[bytes, str, bytes]:
    key = os.urandom(32)
    kid, wrapped = keys.wrap_key(key, aad=aad)
    return key, kid, wrapped


def _keystream_cipher(key: bytes, offset: int):
    block, skip = divmod(offset, BLOCK)
    enc = Cipher(algorithms.AES(key), modes.CTR(block.to_bytes(16, "big"))).encryptor()
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
    written and counted."""

    def __init__(self, path: Path, key: bytes, offset: int | None = None, wait: float = 0):
        self._out: DirectWriter | None = None
        self._dirty = False
        self._key = key
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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
                if time.monotonic() >= deadline:
                    os.close(self._fd)
                    raise
                self._stop.touch()
                time.sleep(0.02)
        self._since = time.time()
        self._stop.unlink(missing_ok=True)
        if offset is not None:
            try:
                self.begin(offset)
            except BaseException:
                self.close()
                raise

    def begin(self, offset: int) -> None:
        """Write from ``offset`` on: what the file holds past it (bytes never counted: a write
        cut short, a process that died) is cut off. Only with the lock held and ``offset``
        read under it."""
        os.ftruncate(self._fd, offset)
        self._out = DirectWriter(self._fd, offset)
        self._enc = _keystream_cipher(self._key, offset)

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
            self._dirty = True

    def rollback(self, offset: int) -> None:
        self._out.reset(offset)
        self._enc = _keystream_cipher(self._key, offset)
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
        self._pos = 0
        self._dec = None
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
        if self._dec is None:
            self._dec = _keystream_cipher(self._key, self._pos)
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

    def close(self) -> None:
        if not self.closed:
            self._in.close()
            os.close(self._fd)
        super().close()
