"""Writes and reads that bypass the page cache (apps.imaging.directio), the storage backend and
the staging files built on them: the same bytes as plain I/O, whatever the alignment, with a
fallback where the file system refuses O_DIRECT, and no page left in the cache."""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import subprocess
import threading

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from apps.imaging import directio, staging
from apps.imaging.storage import DirectFileSystemStorage

ALIGN = directio.ALIGN


def _direct_supported(folder) -> bool:
    try:
        fd = os.open(folder / ".probe", os.O_WRONLY | os.O_CREAT | directio.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    return True


@pytest.fixture
def folder(tmp_path):
    if not directio.O_DIRECT or not _direct_supported(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    return tmp_path


def _resident_pages(path) -> int:
    """Pages of ``path`` in the page cache (util-linux fincore)."""
    tool = shutil.which("fincore")
    if tool is None:
        pytest.skip("fincore (util-linux) is not installed")
    out = subprocess.run([tool, "--bytes", "--noheadings", "--output", "PAGES", str(path)], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[0])


def _write(path, pieces, *, offset=0, direct=True) -> directio.DirectWriter:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    writer = directio.DirectWriter(fd, offset, direct=direct)
    try:
        for piece in pieces:
            writer.write(piece)
        writer.flush()
        os.fsync(fd)
    finally:
        writer.close()
        os.close(fd)
    return writer


@pytest.mark.parametrize("sizes", [[1], [ALIGN], [ALIGN - 1, 2, ALIGN * 3 + 5], [directio.BUFFER + 7, 100],
                                   [3 * directio.BUFFER + ALIGN + 1]])
def test_the_file_holds_exactly_what_was_written(folder, sizes):
    pieces = [os.urandom(n) for n in sizes]
    writer = _write(folder / "f", pieces)
    assert writer.direct, "written with O_DIRECT"
    assert (folder / "f").read_bytes() == b"".join(pieces)


def test_written_bytes_leave_no_page_in_the_cache(folder):
    data = os.urandom(2 * 1024 * 1024 + 123)
    _write(folder / "direct", [data])
    (folder / "plain").write_bytes(data)
    assert _resident_pages(folder / "plain") > 0, "a plain write fills the cache (or the check sees nothing)"
    assert _resident_pages(folder / "direct") == 0


def test_writing_on_at_an_unaligned_offset_keeps_what_is_before_and_drops_what_is_after(folder):
    first = os.urandom(3 * ALIGN + 100)
    _write(folder / "f", [first])
    keep = 2 * ALIGN + 37
    os.truncate(folder / "f", keep)  # what a resumed upload does at its offset
    more = os.urandom(5 * ALIGN + 11)
    _write(folder / "f", [more], offset=keep)
    assert (folder / "f").read_bytes() == first[:keep] + more


def test_a_reset_drops_what_was_written_since(folder):
    path = folder / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    writer = directio.DirectWriter(fd, 0)
    try:
        writer.write(b"a" * (ALIGN + 10))
        writer.flush()
        writer.write(b"b" * 5000)
        writer.reset(ALIGN + 10)
        writer.write(b"c" * 3)
        writer.flush()
    finally:
        writer.close()
        os.close(fd)
    assert path.read_bytes() == b"a" * (ALIGN + 10) + b"ccc"


def test_a_full_buffer_goes_to_the_disk_while_the_next_one_is_filled(folder, monkeypatch):
    """The caller does not wait for the disk: the first buffer's write is held back until the
    caller has filled the second buffer (a writer that writes in line would wait 5 s for it)."""
    real = directio._pwrite_all
    filled = threading.Event()
    waited: list[bool] = []

    def pwrite_all(fd, view, offset):
        if offset == 0:
            waited.append(filled.wait(5))
        return real(fd, view, offset)

    monkeypatch.setattr(directio, "_pwrite_all", pwrite_all)
    data = os.urandom(3 * directio.BUFFER + 5)
    fd = os.open(folder / "f", os.O_RDWR | os.O_CREAT, 0o600)
    writer = directio.DirectWriter(fd)
    try:
        writer.write(data[:2 * directio.BUFFER])  # the first buffer is full and handed over
        filled.set()
        writer.write(data[2 * directio.BUFFER:])
        writer.flush()
    finally:
        writer.close()
        os.close(fd)
    assert waited == [True]
    assert (folder / "f").read_bytes() == data


def test_a_failed_background_write_is_raised_by_the_flush(folder, monkeypatch):
    def broken(fd, view, offset):
        raise OSError(errno.EIO, "disk went away")

    fd = os.open(folder / "f", os.O_RDWR | os.O_CREAT, 0o600)
    writer = directio.DirectWriter(fd)
    try:
        monkeypatch.setattr(directio, "_pwrite_all", broken)
        writer.write(os.urandom(2 * directio.BUFFER))
        with pytest.raises(OSError, match="disk went away"):
            writer.flush()
    finally:
        writer.close()
        os.close(fd)


def test_where_o_direct_is_refused_plain_writes_give_the_same_file(tmp_path, monkeypatch):
    monkeypatch.setattr(directio, "direct_on", lambda fd: False)
    pieces = [os.urandom(n) for n in (ALIGN - 1, 10, 3 * ALIGN)]
    writer = _write(tmp_path / "f", pieces)
    assert not writer.direct
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)


def test_a_device_wanting_a_larger_alignment_falls_back_to_plain_writes(folder, monkeypatch):
    real = directio._pwrite_all
    refused = []

    def pwrite_all(fd, view, offset):
        if not refused:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, view, offset)

    monkeypatch.setattr(directio, "_pwrite_all", pwrite_all)
    data = os.urandom(3 * ALIGN + 5)
    writer = _write(folder / "f", [data])
    assert refused and not writer.direct
    assert (folder / "f").read_bytes() == data


def test_reads_give_the_bytes_at_any_offset_and_stop_at_the_limit(folder):
    data = os.urandom(2 * directio.BUFFER + 3 * ALIGN + 17)
    (folder / "f").write_bytes(data)
    limit = len(data) - 5
    fd = os.open(folder / "f", os.O_RDONLY)
    reader = directio.DirectReader(fd, limit)
    try:
        assert reader.direct
        got, pos = bytearray(), 0
        while chunk := reader.read(pos, 1 << 20):  # front to back, across blocks
            got += chunk
            pos += len(chunk)
        assert bytes(got) == data[:limit]
        for offset, n in [(7, 10), (directio.BUFFER - 3, 10), (ALIGN * 5 + 1, 100), (0, 1), (limit - 1, 10)]:
            part = bytes(reader.read(offset, n))  # anywhere, in any order
            assert part and data[offset:offset + len(part)] == part and len(part) <= n
        assert bytes(reader.read(limit, 10)) == b""
    finally:
        reader.close()
        os.close(fd)


def test_the_next_block_is_read_ahead_while_the_current_one_is_used(folder):
    data = os.urandom(3 * directio.BUFFER)
    (folder / "f").write_bytes(data)
    fd = os.open(folder / "f", os.O_RDONLY)
    reader = directio.DirectReader(fd, len(data))
    try:
        reader.read(0, 10)
        assert reader._ahead is not None
        reader._ahead.result()
        assert reader._blocks[1 - reader._current] == (directio.BUFFER, directio.BUFFER), "the next block is read"
    finally:
        reader.close()
        os.close(fd)


def test_staged_bytes_read_back_the_same_through_several_appends(folder, settings):
    settings.LIGHTBOX_UPLOAD_DIR = str(folder)
    staging.staging_mark()  # a staging folder of its own
    key = os.urandom(32)
    path = staging.staging_create("u.part")  # a writer never makes it
    plain = os.urandom(3 * directio.BUFFER + 1234)
    cuts = [0, 5, ALIGN + 3, directio.BUFFER + 1, len(plain)]
    for start, end in itertools.pairwise(cuts):
        writer = staging.StagingWriter(path, key, start)
        writer.write(plain[start:end])
        writer.close()
    assert _resident_pages(path) == 0
    assert plain[:4096] not in path.read_bytes()
    reader = staging.StagingReader(path, key)
    try:
        assert reader.read() == plain
        reader.seek(directio.BUFFER - 2)
        assert reader.read(10) == plain[directio.BUFFER - 2:directio.BUFFER + 8]
    finally:
        reader.close()


def test_the_storage_backend_saves_files_as_django_does(folder):
    storage = DirectFileSystemStorage(location=folder, file_permissions_mode=0o600, directory_permissions_mode=0o700)
    data = os.urandom(1024 * 1024 + 16 + 3)
    name = storage.save("blobs/ab/cd/abcd", ContentFile(data))
    again = storage.save("blobs/ab/cd/abcd", ContentFile(b"other"))
    assert name == "blobs/ab/cd/abcd" and again != name, "a taken name gets another, as in Django"
    path = folder / name
    assert _resident_pages(path) == 0
    with storage.open(name) as fh:
        assert fh.read() == data
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700


def test_a_failed_save_leaves_no_file(folder):
    storage = DirectFileSystemStorage(location=folder)

    class Broken(ContentFile):
        def chunks(self, chunk_size=None):
            yield b"x" * 10
            raise OSError(errno.EIO, "disk went away")

    with pytest.raises(OSError):
        storage.save("blobs/x", Broken(b""))
    assert not (folder / "blobs" / "x").exists()


def test_the_configured_storage_is_this_backend():
    assert isinstance(storages["default"], DirectFileSystemStorage)
