"""An encrypted temporary file: where plaintext too large to hold in memory waits while it is
read (a zip entry over ``sources.MEMORY_MAX``, a deflated data set inflated past
``dicom.INFLATE_MEMORY_MAX``, a stream ``blobs.put_blob`` must read twice).

A DICOM file, its header included, must never reach the disk in clear: the staging files and the
blobs are encrypted for that, and a temporary file in clear, unlinked at once but its blocks left
on the disk, would undo it. So the spool is AES-256-CTR (the staging cipher: seekable) under a
random key made for it and held only in this object's memory: once it is closed (or the process
dies) nothing can read its bytes, which are in the system's temporary folder (``tempfile``),
unlinked from the start.

It is written once, front to back, and then read from any offset: a write anywhere but at the end
is refused (a keystream is never used twice)."""

from __future__ import annotations

import io
import os
import tempfile

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
#: small reads (pydicom reads an element at a time) are served from this much decrypted at once,
#: as ``tempfile.TemporaryFile``'s buffer (8 KiB) serves them there
WINDOW = 64 * 1024
#: bytes asked of one ``os.pread``, at most (Linux returns at most 0x7ffff000 from one read)
READ_MAX = 1 << 30


class EncryptedSpool(io.RawIOBase):
    """Plaintext in, AES-256-CTR on disk, under a key of its own: written once, front to back,
    then read from any offset (``seek``, ``read``, ``tell``); closed by the caller (a ``with``)."""

    def __init__(self) -> None:
        super().__init__()
        self._file = tempfile.TemporaryFile(buffering=0)  # in tempfile.gettempdir(), unlinked already
        self._key = os.urandom(32)
        self._size = 0
        self._pos = 0
        self._enc = self._cipher(0)  # the keystream at the end, where the next write goes
        self._window = b""  # plaintext from ``_window_at``, for small reads
        self._window_at = 0

    def _cipher(self, offset: int):
        block, skip = divmod(offset, BLOCK)
        cipher = Cipher(algorithms.AES(self._key), modes.CTR(block.to_bytes(BLOCK, "big"))).encryptor()
        if skip:
            cipher.update(b"\0" * skip)
        return cipher

    def _plain(self, offset: int, n: int) -> bytes:
        """``n`` bytes from ``offset``, decrypted (fewer only at the end of the file). One
        ``pread`` may return fewer than asked (Linux reads at most about 2 GiB at a time): read
        on until ``n`` or the end."""
        parts, want, at = [], n, offset
        while want > 0:
            got = os.pread(self._file.fileno(), min(want, READ_MAX), at)
            if not got:
                break
            parts.append(got)
            want -= len(got)
            at += len(got)
        sealed = parts[0] if len(parts) == 1 else b"".join(parts)
        return self._cipher(offset).update(sealed)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("write to a closed spool")
        if self._pos != self._size:
            raise io.UnsupportedOperation("an encrypted spool is written once, front to back")
        view = memoryview(data).cast("B")
        sealed = memoryview(self._enc.update(view))
        while sealed:
            sealed = sealed[self._file.write(sealed):]
        self._size += len(view)
        self._pos = self._size
        return len(view)

    def read(self, size: int | None = -1) -> bytes:
        """A large read (hashing, storing: 1 MiB at a time), and a read of the rest (``size``
        None or negative), decrypted straight into the bytes returned; a small one from the
        window (``readinto``)."""
        if size is None or size < 0:
            if self.closed:
                raise ValueError("read from a closed spool")
            size = max(self._size - self._pos, 0)
        if size >= WINDOW and not self.closed:
            n = min(size, self._size - self._pos)
            if n <= 0:
                return b""
            plain = self._plain(self._pos, n)
            self._pos += len(plain)
            return plain
        return super().read(size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        if self.closed:
            raise ValueError("read from a closed spool")
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        if n >= WINDOW:
            plain = self._plain(self._pos, n)
        else:
            start = self._pos - self._window_at
            if start < 0 or start + n > len(self._window):
                self._window_at = self._pos
                self._window = self._plain(self._pos, min(WINDOW, self._size - self._pos))
                start = 0
            plain = self._window[start:start + n]
        n = len(plain)
        buffer[:n] = plain
        self._pos += n
        return n

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("an encrypted spool is written once, front to back")

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self._key = self._enc = None
            self._window = b""
        super().close()


def spool() -> EncryptedSpool:
    """A new, empty encrypted temporary file. Its key lives only in this object: nobody else,
    and nothing after it is closed, can read it."""
    return EncryptedSpool()
