"""The portal's CRC-32 (apps.imaging.checksums, zlib-ng) gives zlib's values: zip entries,
rendition files and package manifests are checked against CRCs other tools wrote and read."""

from __future__ import annotations

import os
import zlib

import pytest

from apps.imaging.checksums import crc32


@pytest.mark.parametrize("size", [0, 1, 15, 4096, 525 * 1024 + 3])
def test_the_same_values_as_zlib(size):
    data = os.urandom(size)
    assert crc32(data) == zlib.crc32(data)
    assert crc32(bytearray(data)) == crc32(memoryview(data)) == zlib.crc32(data)


def test_a_crc_continued_piece_by_piece_is_the_crc_of_the_whole():
    data = os.urandom(100_003)
    value = 0
    for at in range(0, len(data), 7_919):
        value = crc32(data[at:at + 7_919], value)
    assert value == zlib.crc32(data)
