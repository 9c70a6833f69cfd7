"""A private folder in memory for a SQLite database that is thrown away when the process ends:
the test settings' database and the ingest benchmark's (``bench/ingest/harness.prepare``), so
that neither pays the disk's fsync on every commit. Kept out of the settings package so that the
benchmark can import it without loading settings."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

#: the memory file system where Linux has one; elsewhere the system's temporary folder
SHM = "/dev/shm"  # noqa: S108 - mkdtemp makes a private folder (0700) with a random name


def private_memory_folder(prefix: str) -> str:
    """A new folder only this user may enter, in /dev/shm when it exists (else the temporary
    folder), removed with what it holds when the process exits."""
    folder = tempfile.mkdtemp(prefix=prefix, dir=SHM if os.path.isdir(SHM) else None)
    atexit.register(shutil.rmtree, folder, True)
    return folder
