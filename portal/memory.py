"""glibc malloc settings for the server and worker processes.

Uploads and ingest allocate and free buffers of a few hundred KiB to 16 MiB many times a second
(request bodies, zip entries, blob plaintexts). By default glibc maps each large block afresh and
unmaps it on free, and gives freed heap memory back to the kernel past 128 KiB: every new block
then costs a page fault per page. On a VM whose free memory goes back to its host (free page
reporting, ballooning: these machines), such a fault costs about ten times more (docs/performance.md,
sixth and seventh passes). Here blocks up to 32 MiB come from the heap and freed memory is kept for
the next ones: the process's peak RSS is unchanged (its buffers are bounded), it only stops
returning memory it will need again a moment later. Settings given by the operator
(``MALLOC_*_`` variables, ``GLIBC_TUNABLES``) win; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (glibc's largest value on 64-bit systems)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: freed memory at the top of the heap is given back only past this much
TRIM_THRESHOLD = 512 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Apply the settings above to this process (its threads too). False if not applied."""
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")) or (
            "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # pragma: no cover - glibc has it
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def apply_from_settings() -> bool:
    from django.conf import settings

    return settings.LIGHTBOX_KEEP_FREED_MEMORY and keep_freed_memory()
