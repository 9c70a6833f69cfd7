"""What an ingest reads: a single file, a zip, a folder tree or a DICOMDIR, as a sequence of
``Entry`` (report path + a way to open a seekable local file). Zip entries are checked against
path traversal and zip bombs before a byte is extracted, and extraction stops at the declared
size, so a lying header cannot inflate past the limits."""

from __future__ import annotations

import contextlib
import io
import lzma
import os
import posixpath
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.utils.translation import gettext_noop

from apps.core import spool
from apps.core.i18n import Deferred
from apps.imaging import dicom

COPY = 1024 * 1024
#: entries up to this size are extracted into memory (ingest holds a batch of them at a time)
MEMORY_MAX = 8 * 1024 * 1024
INFLATES = Deferred(gettext_noop("zip bomb suspected: entry inflates past its declared size"))
#: a zip entry whose compressed data cannot be decompressed, or whose checksum is wrong (the same
#: reason as ``services._run_entries`` gives for deflated data and CRC errors)
DAMAGED_ENTRY = Deferred(gettext_noop("damaged zip entry (checksum or compressed data)"))


@dataclass
class Entry:
    path: str
    open: Callable[[], contextlib.AbstractContextManager[IO[bytes]]] | None = None
    size: int | None = None
    skip_reason: str = ""
    #: a zip entry as its central directory describes it: (local header offset, name, CRC-32,
    #: compressed size, size); what a prepared entry (apps.imaging.follow) must match
    zip_key: tuple[int, str, int, int, int] | None = None


def _is_dicom_magic(fh: IO[bytes]) -> bool:
    pos = fh.tell()
    fh.seek(128)
    magic = fh.read(4)
    fh.seek(pos)
    return magic == b"DICM"


def unsafe_name(name: str) -> str:
    """A reason if a zip entry name could escape the extraction folder, else ''."""
    if "\\" in name:
        name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return Deferred(gettext_noop("unsafe path in zip: absolute path"))
    if ".." in name.split("/"):
        return Deferred(gettext_noop("unsafe path in zip: '..' escapes the archive"))
    if "\0" in name:
        return Deferred(gettext_noop("unsafe path in zip: NUL byte"))
    return ""


#: the compression methods Python's zipfile reads (stored, deflated, bzip2, LZMA)
READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
#: the names of others an archiver may write, as the reason names them (Windows Explorer writes
#: Deflate64 for large zips); another is named by its number
METHOD_NAMES = {1: "Shrink", 6: "Implode", 9: "Deflate64", 10: "PKWARE Implode", 18: "IBM TERSE", 19: "IBM LZ77",
                93: "Zstandard", 94: "MP3", 95: "XZ", 96: "JPEG", 97: "WavPack", 98: "PPMd", 99: "AES"}
UNREADABLE_METHOD = gettext_noop("compressed with a method this portal cannot read (%(method)s): re-create the zip "
                                 "with standard compression")
#: a zip entry Python's zipfile cannot open for another reason (a feature it does not read, such
#: as patched data, or a local header whose name is not valid UTF-8 though flagged so)
UNREADABLE_ENTRY = Deferred(gettext_noop("zip entry this portal cannot read (it uses a zip feature the portal does "
                                         "not support): re-create the zip with standard compression"))


def entry_refusal(name: str, flag_bits: int, file_size: int, compress_size: int,
                  compress_type: int = zipfile.ZIP_STORED) -> str:
    """Why a zip entry is not extracted (unsafe name, encrypted, a compression method zipfile
    cannot read, bomb, nested zip, DICOMDIR), or '' to extract it. The ingest and the follower
    apply the same checks (the follower reads ahead only stored and deflated entries)."""
    reason = unsafe_name(name)
    if not reason and flag_bits & 0x1:
        reason = Deferred(gettext_noop("encrypted zip entry"))
    if not reason and compress_type not in READABLE_METHODS:
        reason = Deferred(UNREADABLE_METHOD, method=METHOD_NAMES.get(compress_type, str(compress_type)))
    if not reason and file_size > 1024 * 1024 and file_size / max(1, compress_size) > settings.LIGHTBOX_ZIP_MAX_RATIO:
        reason = Deferred(gettext_noop("zip bomb suspected: entry expands %(ratio)sx"),
                          ratio=file_size // max(1, compress_size))
    if not reason and name.lower().endswith(".zip"):
        reason = Deferred(gettext_noop("nested archive not unpacked: upload it on its own"))
    if not reason and posixpath.basename(name).upper() == "DICOMDIR":
        reason = Deferred(gettext_noop("DICOMDIR index: its files are ingested"))
    return reason


def _open_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    """Open one entry for reading; one zipfile cannot open (a method or feature it does not
    read, a name in its local header that does not decode) is refused with a reason
    (DicomError), so the rest of the archive is ingested."""
    try:
        return zf.open(info)
    except (NotImplementedError, UnicodeDecodeError, RuntimeError):
        raise dicom.DicomError(UNREADABLE_ENTRY) from None


def _read(src: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes of an entry being extracted. Its damaged compressed data raises
    DicomError(DAMAGED_ENTRY), so the rest of the archive is ingested: bzip2 raises an OSError
    without an errno ("Invalid data stream"), LZMA an LZMAError, either an EOFError where the data
    ends early. An OSError with an errno is the disk's (reading the upload failed) and is raised on."""
    try:
        return src.read(size)
    except (EOFError, lzma.LZMAError):
        raise dicom.DicomError(DAMAGED_ENTRY) from None
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise dicom.DicomError(DAMAGED_ENTRY) from None


@contextlib.contextmanager
def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[IO[bytes]]:
    """Extract one entry, never more than its declared size: into memory up to MEMORY_MAX
    (one read; the CRC is checked at the end), else to an encrypted temporary file (``spool``:
    a DICOM file is never on the disk in clear)."""
    if info.file_size <= MEMORY_MAX:
        with _open_entry(zf, info) as src:
            data = _read(src, info.file_size + 1)
        if len(data) > info.file_size:
            raise dicom.DicomError(INFLATES)
        yield io.BytesIO(data)
        return
    with spool.spool() as out, _open_entry(zf, info) as src:
        left = info.file_size
        while True:
            chunk = _read(src, min(COPY, left + 1))
            if not chunk:
                break
            left -= len(chunk)
            if left < 0:
                raise dicom.DicomError(INFLATES)
            out.write(chunk)
        out.seek(0)
        yield out


def zip_entries(fh: IO[bytes], prefix: str = "") -> Iterator[Entry]:
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError):
        yield Entry(path=prefix or "(archive)", skip_reason=Deferred(gettext_noop("damaged zip archive")))
        return
    infos = [i for i in zf.infolist() if not i.is_dir()]
    label = prefix or "(archive)"
    if not infos:
        yield Entry(path=label, skip_reason=Deferred(gettext_noop("the zip holds no files")))
        return
    if len(infos) > settings.LIGHTBOX_ZIP_MAX_ENTRIES:
        yield Entry(path=label, skip_reason=Deferred(gettext_noop("zip refused: %(entries)s entries (limit %(limit)s)"),
                                                     entries=len(infos), limit=settings.LIGHTBOX_ZIP_MAX_ENTRIES))
        return
    # the ratio is checked per entry below (so a bomb among good files costs only itself); the
    # total is checked here, before anything is extracted
    total = sum(i.file_size for i in infos)
    if total > settings.LIGHTBOX_ZIP_MAX_TOTAL_BYTES:
        yield Entry(path=label, skip_reason=Deferred(gettext_noop("zip refused: uncompressed size over the limit")))
        return
    for info in infos:
        path = posixpath.join(prefix, info.filename) if prefix else info.filename
        reason = entry_refusal(info.filename, info.flag_bits, info.file_size, info.compress_size, info.compress_type)
        if reason:
            yield Entry(path=path, size=info.file_size, skip_reason=reason)
            continue
        key = (info.header_offset, info.filename, info.CRC, info.compress_size, info.file_size)
        yield Entry(path=path, size=info.file_size, open=lambda info=info: _extract(zf, info), zip_key=key)


def stream_entries(opener: Callable[[], contextlib.AbstractContextManager[IO[bytes]]], name: str) -> Iterator[Entry]:
    """Entries of one uploaded stream: a zip's members, or the stream itself as one file."""
    with opener() as fh:
        is_zip = not _is_dicom_magic(fh) and zipfile.is_zipfile(fh)
        fh.seek(0)
        if is_zip:
            yield from zip_entries(fh)
            return
    yield Entry(path=name or "(upload)", open=opener)


@contextlib.contextmanager
def _open_path(path: Path) -> Iterator[IO[bytes]]:
    with open(path, "rb") as fh:
        yield fh


#: a path of a server-side tree that is not a file: opened, a pipe would wait for a writer for ever
NOT_A_FILE = Deferred(gettext_noop("not a regular file (a device, socket or pipe): not read"))


def path_entries(root: Path) -> Iterator[Entry]:
    """Entries of a server-side path: a folder tree, a zip, a DICOMDIR or one file. What is not
    a regular file (a symbolic link in a tree, a socket, a pipe, a device) is never opened: its
    report line says so."""
    root = Path(root)
    if root.is_dir():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for filename in sorted(filenames):
                full = Path(dirpath) / filename
                rel = full.relative_to(root).as_posix()
                found = full.lstat()  # never followed: a link in a tree is not read
                if stat.S_ISLNK(found.st_mode):
                    yield Entry(path=rel, skip_reason=Deferred(gettext_noop("symbolic link not followed")))
                elif not stat.S_ISREG(found.st_mode):
                    yield Entry(path=rel, skip_reason=NOT_A_FILE)
                elif filename.upper() == "DICOMDIR":
                    yield Entry(path=rel, skip_reason=Deferred(gettext_noop("DICOMDIR index: its files are ingested")))
                elif filename.lower().endswith(".zip"):
                    with open(full, "rb") as fh:
                        yield from zip_entries(fh, prefix=rel)
                else:
                    yield Entry(path=rel, size=found.st_size, open=lambda p=full: _open_path(p))
        return
    if root.exists() and not root.is_file():  # a socket, a pipe, a device; a path gone fails the job
        yield Entry(path=root.name, skip_reason=NOT_A_FILE)
        return
    if root.name.upper() == "DICOMDIR":
        with open(root, "rb") as fh:
            try:
                refs = dicom.dicomdir_references(fh)
            except Exception:  # noqa: BLE001
                yield Entry(path=root.name, skip_reason=Deferred(gettext_noop("damaged DICOMDIR")))
                return
        base = root.parent.resolve()
        for ref in refs:
            reason, full, size = _dicomdir_file(base, ref)
            if reason:  # a NUL is no character a report line (a text column) can hold
                yield Entry(path=ref.replace("\0", "\N{REPLACEMENT CHARACTER}"), skip_reason=reason)
            else:
                yield Entry(path=ref, size=size, open=lambda p=full: _open_path(p))
        return
    yield from stream_entries(lambda: _open_path(root), root.name)


def _dicomdir_file(base: Path, ref: str) -> tuple[str, Path | None, int | None]:
    """Why a file a DICOMDIR references is not read, or '', its path and its size. Its name is
    checked before any use of it as a path (a NUL in it makes the OS calls raise)."""
    reason = unsafe_name(ref)
    if reason:
        return reason, None, None
    try:
        full = (base / ref).resolve()
        if not full.is_relative_to(base):
            return Deferred(gettext_noop("unsafe path in DICOMDIR")), None, None
        found = full.stat()
    except (FileNotFoundError, NotADirectoryError):
        return Deferred(gettext_noop("referenced by the DICOMDIR but missing")), None, None
    except (OSError, ValueError, RuntimeError):  # a name too long, a symbolic link loop
        return Deferred(gettext_noop("unsafe path in DICOMDIR")), None, None
    if not stat.S_ISREG(found.st_mode):
        return NOT_A_FILE, None, None
    return "", full, found.st_size


