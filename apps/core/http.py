"""Reading HTTP's own notation: shared by the tus server and the download views."""

from __future__ import annotations


def header_number(value: str | None, *, past: int) -> int | None:
    """A header's non-negative number (Content-Length, Upload-Length, Upload-Offset, a Range
    position), or None when ``value`` is missing or not one. Only the digits 0-9 count, as HTTP
    writes numbers: str.isdigit() also takes '²', which int() refuses, and '٣', which it reads as 3.
    A number with more digits than ``past`` stands for ``past``, which the caller takes as beyond
    anything it holds (int() refuses a number of more than 4,300 digits)."""
    if not value or not value.isascii() or not value.isdigit():
        return None
    digits = value.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(past)) else past
