"""A staging file's AES-CTR keystream is never used twice: bytes cut off (a rollback, or bytes a
writer that died left past the committed offset) are written again under a new segment, whose
nonce is recorded in the side file ``<name>.iv`` that the reader follows. With one keystream, two
copies of the file (before and after) gave the XOR of the two plaintexts."""

from __future__ import annotations

import base64
import hashlib
import io
import os

import pytest
from django.test import Client

from apps.imaging import directio, staging, uploads
from apps.imaging.models import Upload
from apps.organizations.models import Role

pytestmark = pytest.mark.django_db


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _read(path, key, length=None) -> bytes:
    reader = staging.StagingReader(path, key, length)
    try:
        return reader.read()
    finally:
        reader.close()


@pytest.fixture
def staged(tmp_path, settings):
    settings.LIGHTBOX_UPLOAD_DIR = str(tmp_path)
    staging.staging_mark()  # a staging folder of its own
    return staging.staging_create("u.part"), os.urandom(32)


def test_bytes_written_again_after_a_rollback_have_another_keystream(staged):
    path, key = staged
    first, again = os.urandom(3000), os.urandom(2000)
    writer = staging.StagingWriter(path, key, 0)
    writer.write(first)
    writer.sync()
    before = path.read_bytes()
    writer.rollback(1000)  # the chunk from 1000 on failed its checksum, say
    writer.write(again)
    writer.close()
    after = path.read_bytes()

    assert after[:1000] == before[:1000], "the bytes before the cut are not touched"
    assert _xor(before[1000:3000], after[1000:3000]) != _xor(first[1000:], again)
    assert _read(path, key) == first[:1000] + again
    assert [start for start, _nonce in staging.segments_read(path)] == [0, 1000]


def test_bytes_a_dead_writer_left_past_the_offset_are_written_again_with_another_keystream(staged):
    path, key = staged
    first, again = os.urandom(5000), os.urandom(4000)
    writer = staging.StagingWriter(path, key, 0)
    writer.write(first)
    writer.close()  # on disk, but only 1000 bytes were counted (the process died before the rest)
    before = path.read_bytes()

    writer = staging.StagingWriter(path, key, 1000)
    writer.write(again)
    writer.close()
    after = path.read_bytes()

    assert _xor(before[1000:], after[1000:]) != _xor(first[1000:], again)
    assert _read(path, key) == first[:1000] + again


def test_appends_that_cut_nothing_keep_one_keystream_and_no_side_file(staged):
    """The common case costs nothing: the file reads as files staged before always did. A
    request refused before its first byte (rolled back with nothing written) cuts nothing."""
    path, key = staged
    plain = os.urandom(10_000)
    for start, end in [(0, 3000), (3000, 3001), (3001, 10_000)]:
        writer = staging.StagingWriter(path, key, start)
        writer.rollback(start)
        writer.write(plain[start:end])
        writer.close()
    assert not staging.segments_path(path).exists()
    assert _read(path, key) == plain


def test_reads_cross_segments_from_any_offset(staged):
    path, key = staged
    size = 2 * directio.BUFFER + 777
    plain = bytearray(os.urandom(size))
    cuts = [5, 4099, directio.BUFFER - 3, directio.BUFFER + 17, 2 * directio.BUFFER + 1]
    writer = staging.StagingWriter(path, key, 0)
    writer.write(plain)
    writer.close()
    for at in cuts:
        writer = staging.StagingWriter(path, key, at)
        writer.write(os.urandom(300))  # a chunk refused: cut off again
        writer.rollback(at)
        fresh = os.urandom(size - at)
        writer.write(fresh)
        writer.close()
        plain[at:] = fresh
    assert len(staging.segments_read(path)) == len(cuts) + 1
    assert _read(path, key) == bytes(plain)
    reader = io.BufferedReader(staging.StagingReader(path, key), buffer_size=1024)  # as upload_open reads
    try:
        for at, n in [(0, 10), (3, 5), (4090, 20), (directio.BUFFER - 10, 40), (directio.BUFFER + 16, 2),
                      (2 * directio.BUFFER - 1, 900), (size - 1, 5)]:
            reader.seek(at)
            assert reader.read(n) == bytes(plain[at:at + n]), at
    finally:
        reader.close()
    assert _read(path, key, 4099) == bytes(plain[:4099]), "segments past a reader's length do not matter"


def test_a_record_cut_short_by_a_crash_is_left_out_and_written_over(staged):
    path, key = staged
    first = os.urandom(500)
    writer = staging.StagingWriter(path, key, 0)
    writer.write(first)
    writer.sync()
    writer.rollback(100)
    writer.close()
    with open(staging.segments_path(path), "ab") as side:
        side.write(b"\x01\x02\x03")  # a crash while the next record was written
    assert [s for s, _n in staging.segments_read(path)] == [0, 100]
    writer = staging.StagingWriter(path, key, 100)
    writer.write(os.urandom(50))
    writer.rollback(100)
    again = os.urandom(70)
    writer.write(again)
    writer.close()
    assert staging.segments_path(path).stat().st_size == 2 * staging.SEGMENT.size
    assert _read(path, key) == first[:100] + again


def test_a_chunk_refused_for_its_checksum_is_sent_again_under_another_keystream(org_a, settings):
    """Through the tus endpoint: the 460 cuts the chunk off, the chunk sent again is stored
    under a new segment, the upload reads back whole, and cancelling it removes the side file."""
    from tests.factories import member
    from tests.imaging.test_tus import TUS, _create, _patch

    client = Client(enforce_csrf_checks=False)
    client.force_login(member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"))
    data = os.urandom(4000)
    url = _create(client, len(data))
    upload = Upload.objects.latest("pk")
    path = staging.staging_path(upload.staging_name)

    def sha1(body: bytes) -> dict:
        return {"HTTP_UPLOAD_CHECKSUM": "sha1 " + base64.b64encode(hashlib.sha1(body).digest()).decode()}

    assert _patch(client, url, 0, data[:1000], **sha1(data[:1000])).status_code == 204
    assert _patch(client, url, 1000, os.urandom(2000), **sha1(b"other")).status_code == 460
    assert _patch(client, url, 1000, data[1000:3000], **sha1(data[1000:3000])).status_code == 204
    assert [s for s, _n in staging.segments_read(path)] == [0, 1000]
    upload.refresh_from_db()
    assert upload.offset == 3000
    with uploads.upload_open(upload) as fh:
        assert fh.read() == data[:3000]

    assert client.delete(url, **TUS).status_code == 204
    assert not path.exists() and not staging.segments_path(path).exists()
