"""Server and worker processes reuse the memory they free for their next large buffers
(portal/memory.py): a batch of large buffers allocated, used and freed again and again faults
its pages in once, not on every round."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import resource, sys
from portal.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "on" else False
size = 8 * 1024 * 1024
def batch():  # what a follower's batch does: 32 MiB of entries, used, then freed together
    held = [bytearray(size) for _ in range(4)]
    for b in held:
        b[0::4096] = b"\1" * (size // 4096)  # touch every page
batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    batch()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **extra: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


def _huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc settings")
@pytest.mark.skipif(_huge_pages_always(), reason="huge pages fault 2 MiB at a time: the count says little")
def test_freed_buffers_are_reused_not_faulted_in_again():
    applied, kept = _faults("on")
    _, default = _faults("off")
    pages = 10 * 4 * 8 * 1024 * 1024 // 4096
    assert applied
    assert default > pages // 2, "glibc's defaults give the batches back and fault them in again"
    assert kept < pages // 10, f"{kept} page faults for ten rounds of reused buffers"


def test_the_operators_own_settings_win():
    applied, _ = _faults("on", MALLOC_TRIM_THRESHOLD_="131072")
    assert not applied
    applied, _ = _faults("on", GLIBC_TUNABLES="glibc.malloc.trim_threshold=131072")
    assert not applied


def test_processes_apply_it_as_configured(settings, monkeypatch):
    from portal import memory

    calls: list[bool] = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(True) or True)
    settings.LIGHTBOX_KEEP_FREED_MEMORY = False
    assert not memory.apply_from_settings() and calls == []
    settings.LIGHTBOX_KEEP_FREED_MEMORY = True
    assert memory.apply_from_settings() and calls == [True]
