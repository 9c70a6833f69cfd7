"""portal/tmpfs.py: the private memory folder the SQLite test database and the ingest benchmark's
database live in."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portal import tmpfs


def test_the_folder_is_private_in_memory_and_gone_when_the_process_exits(tmp_path):
    if not os.path.isdir(tmpfs.SHM):
        pytest.skip("no /dev/shm on this system")
    code = ("from portal import tmpfs; f = tmpfs.private_memory_folder('lightbox-t-'); "
            "open(f + '/db', 'w').write('x'); print(f)")
    folder = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    assert folder.startswith(tmpfs.SHM + "/lightbox-t-")
    assert not os.path.exists(folder)  # removed at exit, with what it held


def test_the_folder_is_only_this_users():
    folder = tmpfs.private_memory_folder("lightbox-t-")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    if os.path.isdir(tmpfs.SHM):
        assert os.path.dirname(folder) == tmpfs.SHM
