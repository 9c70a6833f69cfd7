"""What the process keeps in the system's temporary folder, for the tests that show nothing waits
there in clear (the encrypted spool: ingest, attachments, request bodies). The ``tmp_folder``
fixture (tests/conftest.py) makes that folder the test's own."""

from __future__ import annotations

import os
from pathlib import Path


def open_in(folder: Path) -> list[bytes]:
    """The bytes of every file this process holds open in ``folder`` (unlinked ones included)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + "/"):
            with open(f"/proc/self/fd/{fd}", "rb") as f:
                found.append(f.read())
    return found


def held_in(folder: Path) -> list[bytes]:
    """The bytes of every file in ``folder`` and of every file this process holds open in it."""
    found = open_in(folder)
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                found.append(f.read())
    return found
