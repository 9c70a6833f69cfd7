"""CRC-32 (the zip and PNG polynomial), the one function the portal uses for it.

zlib-ng's implementation folds with carry-less multiplication (PCLMULQDQ/VPCLMULQDQ): about
55 GB/s here against 4 GB/s for the system zlib's, whose CRC was a tenth of the follower's CPU
(docs/performance.md, seventh pass). Same values as ``zlib.crc32``."""

from __future__ import annotations

from zlib_ng import zlib_ng


def crc32(data, value: int = 0) -> int:
    """The CRC-32 of ``data`` (bytes-like), continuing from ``value``."""
    return zlib_ng.crc32(data, value)
