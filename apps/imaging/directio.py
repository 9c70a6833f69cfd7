"""File writes and reads that bypass the page cache (O_DIRECT) where the file system allows it.

The portal writes every study twice, and reads neither copy back soon: the tus staging file
(read once by the ingest, then deleted) and the encrypted blob files. Through the page cache,
each of those bytes first fills a cache page. That evicts pages worth keeping (the database's,
recent downloads'), and it costs CPU. Where memory is handed back to a hypervisor, as with a
VM's free page reporting, filling a page that was handed back costs about ten times as much
(docs/performance.md, seventh pass). With O_DIRECT, data goes from the process's own buffer
to the disk.

O_DIRECT needs the file offset, the length and the buffer address aligned to the device's
block. ``DirectWriter`` keeps one aligned buffer, writes whole blocks, and writes the last
partial block padded before cutting the file back to its length. ``DirectReader`` reads the
aligned blocks around a range. Either falls back to ordinary I/O, with the same results, where
the file system refuses O_DIRECT (tmpfs, some network file systems) or the platform has none.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

#: offsets, lengths and buffer addresses are multiples of this (a page: enough for 512-byte
#: and 4 KiB sector devices)
ALIGN = 4096
#: the aligned buffer: whole blocks are written once it is full
BUFFER = 1024 * 1024
O_DIRECT = getattr(os, "O_DIRECT", 0)
#: idle buffers kept for reuse: a fresh mapping costs a page fault per page on first use
POOL = 8

#: threads doing the disk's side while callers go on: a writer's full buffer written, a reader's
#: next block read ahead (at most one under way per writer or reader; none waits for another)
IO_THREADS = 4

_pool: list[mmap.mmap] = []
_pool_lock = threading.Lock()
_io: ThreadPoolExecutor | None = None


def _io_threads() -> ThreadPoolExecutor:
    global _io
    if _io is None:
        with _pool_lock:
            if _io is None:
                _io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="direct-io")
    return _io


def _after_fork_in_child() -> None:
    """A forked process (Celery's pool, gunicorn's workers) starts with no buffer and no thread
    of its parent's: the threads do not exist in it."""
    global _io, _pool_lock
    _pool.clear()
    _io = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _buffer_take() -> mmap.mmap:
    with _pool_lock:
        if _pool:
            return _pool.pop()
    # page-aligned; private, so that a forked process never shares a buffer with its parent
    return mmap.mmap(-1, BUFFER + ALIGN, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def _buffer_give(buffer: mmap.mmap) -> None:
    with _pool_lock:
        if len(_pool) < POOL:
            _pool.append(buffer)
            return
    buffer.close()


def _down(n: int) -> int:
    return n - n % ALIGN


def _up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def direct_on(fd: int) -> bool:
    """Turn O_DIRECT on for an open file; False where the file system refuses it."""
    if not O_DIRECT:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | O_DIRECT)
    except OSError:
        return False
    return True


def direct_off(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_DIRECT)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        done = os.pwrite(fd, view, offset)
        if done <= 0:  # pragma: no cover - a regular file writes something or raises
            raise OSError(errno.EIO, "write made no progress")
        view, offset = view[done:], offset + done


def fsync_paths(*paths: str | os.PathLike) -> None:
    """fsync each file or folder, in order (a folder: the entries it holds reach the disk)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)  # a folder opens read-only too
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _plain_if_refused(owner, io, *args):
    """``io(*args)``; if the device refuses O_DIRECT there (it wants a larger alignment than
    ALIGN), the file goes on with plain I/O (``owner.direct`` False) and ``io`` is tried again."""
    try:
        return io(*args)
    except OSError as exc:
        if not (owner.direct and exc.errno == errno.EINVAL):
            raise
    direct_off(owner.fd)
    owner.direct = False
    return io(*args)


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


class DirectWriter:
    """Writes a file sequentially from ``offset`` on, through two aligned buffers.

    ``write(data)`` copies into the buffer, or ``reserve(n)`` and ``commit(k)`` let a cipher
    write into it directly. A full buffer's whole blocks are written on a thread while the
    caller fills the other buffer: an O_DIRECT write waits for the disk, and the caller need not.
    ``flush()`` puts everything on disk up to ``position`` and cuts the file there (the caller
    fsyncs for durability); a failed background write is raised by the next ``reserve``,
    ``flush`` or ``reset``. The bytes before ``offset`` in the file are kept: the part of the
    first block before it is read back first. ``fd`` stays the caller's to close; ``close()``
    waits for the write under way and releases the buffers."""

    def __init__(self, fd: int, offset: int = 0, *, direct: bool = True):
        self.fd = fd
        self.direct = direct and direct_on(fd)
        self._maps: list[mmap.mmap] = [_buffer_take()]
        self._views = [memoryview(self._maps[0])]
        self._current = 0
        self._view = self._views[0]
        self._pending: Future | None = None  # the other buffer's write, under way
        self._base = self._fill = 0
        self.reset(offset)

    @property
    def position(self) -> int:
        return self._base + self._fill

    def _settle(self) -> None:
        """Wait for the write under way; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def reset(self, offset: int) -> None:
        """Go on writing at ``offset`` (nothing after it is kept once flushed)."""
        self._settle()
        self._base = _down(offset)
        self._fill = offset - self._base
        if self._fill:
            got = _pread_into(self.fd, self._view[:ALIGN], self._base) if self.direct else os.preadv(
                self.fd, [self._view[:self._fill]], self._base)
            if got < self._fill:
                raise OSError(errno.EIO, "the file is shorter than the offset to write at")

    def reserve(self, n: int) -> memoryview:
        """Room for ``n`` more bytes (at most BUFFER - ALIGN); fill it, then ``commit``."""
        if self._fill + n > len(self._view):
            self._write_blocks()
        return self._view[self._fill:self._fill + n]

    def commit(self, n: int) -> None:
        self._fill += n

    def write(self, data) -> None:
        data = memoryview(data).cast("B")
        step = BUFFER - ALIGN
        for at in range(0, len(data), step):
            piece = data[at:at + step]
            self.reserve(len(piece))[:] = piece
            self.commit(len(piece))

    def _write(self, view: memoryview, offset: int) -> None:
        _plain_if_refused(self, _pwrite_all, self.fd, view, offset)

    def _write_blocks(self) -> None:
        """Start writing the buffer's whole blocks on a thread and go on in the other buffer,
        the partial block left at its start."""
        whole = _down(self._fill)
        if not whole:
            return
        self._settle()  # the other buffer is free again
        if len(self._maps) == 1:
            self._maps.append(_buffer_take())
            self._views.append(memoryview(self._maps[1]))
        full, other = self._view, self._views[1 - self._current]
        rest = self._fill - whole
        other[:rest] = full[whole:self._fill]
        self._pending = _io_threads().submit(self._write, full[:whole], self._base)
        self._current = 1 - self._current
        self._view = other
        self._base += whole
        self._fill = rest

    def flush(self) -> None:
        """Everything written reaches the file, which ends at ``position``."""
        self._settle()
        whole = _down(self._fill)
        if whole:
            self._write(self._view[:whole], self._base)
            rest = self._fill - whole
            self._view[:rest] = self._view[whole:self._fill]
            self._base += whole
            self._fill = rest
        if self._fill:
            if self.direct:
                padded = _up(self._fill)
                self._view[self._fill:padded] = bytes(padded - self._fill)
                self._write(self._view[:padded], self._base)
            else:
                self._write(self._view[:self._fill], self._base)
        os.ftruncate(self.fd, self.position)

    def close(self) -> None:
        if not self._maps:
            return
        try:
            if self._pending is not None:
                wait([self._pending])  # its buffer is not given back while the disk reads it
                self._pending = None
        finally:
            for view, buffer in zip(self._views, self._maps, strict=True):
                view.release()
                _buffer_give(buffer)
            self._maps, self._views = [], []


class DirectReader:
    """Reads a file through aligned blocks of BUFFER bytes (O_DIRECT where allowed); while the
    caller works on one block, the next is read ahead on a thread (O_DIRECT gets no read-ahead
    from the kernel).

    ``read(offset, n)`` returns a view of at most ``n`` bytes from ``offset`` (fewer at a block's
    end, at ``limit`` or at the end of the file; empty only there), valid until the next call.
    Any offset may be read; reading front to back is what the read-ahead serves."""

    def __init__(self, fd: int, limit: int, *, direct: bool = True):
        self.fd = fd
        self.limit = limit
        self.direct = direct and direct_on(fd)
        self._maps = [_buffer_take(), _buffer_take()]
        self._views = [memoryview(m) for m in self._maps]
        self._blocks = [(0, 0), (0, 0)]  # (file offset, bytes) held by each buffer
        self._current = 0
        self._ahead: Future | None = None  # the read into the other buffer, under way

    def _fill(self, index: int, offset: int) -> None:
        """Read the aligned block at ``offset`` (a multiple of ALIGN) into buffer ``index``."""
        view = self._views[index][:min(BUFFER, _up(self.limit - offset))]
        got = _plain_if_refused(self, _pread_into, self.fd, view, offset)
        self._blocks[index] = (offset, min(got, self.limit - offset))

    def _holds(self, index: int, offset: int) -> bool:
        start, size = self._blocks[index]
        return start <= offset < start + size

    def read(self, offset: int, n: int) -> memoryview:
        if n <= 0 or offset >= self.limit:
            return self._views[self._current][:0]
        if not self._holds(self._current, offset):
            other = 1 - self._current
            if self._ahead is not None:
                self._ahead.result()  # done before its buffer is looked at or reused
                self._ahead = None
            if not self._holds(other, offset):
                self._fill(other, _down(offset))
            self._current = other
            following = self._blocks[other][0] + self._blocks[other][1]
            if self._blocks[other][1] and following < self.limit:
                self._ahead = _io_threads().submit(self._fill, 1 - other, following)
        start, size = self._blocks[self._current]
        at = offset - start
        return self._views[self._current][at:min(size, at + n)]

    def close(self) -> None:
        if not self._maps:
            return
        if self._ahead is not None:
            wait([self._ahead])  # its buffer is not given back while the disk fills it
            self._ahead = None
        for view, buffer in zip(self._views, self._maps, strict=True):
            view.release()
            _buffer_give(buffer)
        self._maps, self._views = [], []
