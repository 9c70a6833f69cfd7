"""apps.imaging.j2k: a JPEG 2000 codestream coded with the 9-7 irreversible transform is found,
whether its main header or a tile-part header says so, raw or inside a JP2 file."""

import struct

import numpy as np
import openjpeg
import pytest

from apps.imaging import j2k

IMAGE = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)


def _reversible() -> bytes:
    return openjpeg.encode(IMAGE, bits_stored=12)


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">HH", marker, len(body) + 2) + body


def _after_cod(cs: bytes, extra: bytes) -> bytes:
    """``extra`` put in the main header right after its COD segment."""
    cod = cs.index(b"\xff\x52")
    end = cod + 2 + struct.unpack_from(">H", cs, cod + 2)[0]
    return cs[:end] + extra + cs[end:]


def _in_first_tile_part(cs: bytes, extra: bytes) -> bytes:
    """``extra`` put in the first tile-part's header (after its SOT segment), its length grown to match."""
    sot = cs.index(b"\xff\x90\x00\x0a")
    psot = struct.unpack_from(">I", cs, sot + 6)[0]
    grown = cs[:sot + 6] + struct.pack(">I", psot + len(extra) if psot else 0) + cs[sot + 10:sot + 12]
    return grown + extra + cs[sot + 12:]


def _coc_9_7(component: int = 0) -> bytes:
    # Ccoc (one byte: fewer than 257 components), Scoc, SPcoc: levels, xcb, ycb, style, transform 0
    return _segment(0xFF53, bytes([component, 0, 5, 4, 4, 0, 0]))


def _cod_9_7() -> bytes:
    # Scod, SGcod: progression, layers (2 bytes), MCT; SPcod: levels, xcb, ycb, style, transform 0
    return _segment(0xFF52, bytes([0, 0, 0, 1, 0, 5, 4, 4, 0, 0]))


def test_reversible_and_irreversible_codestreams_told_apart():
    assert j2k.irreversible(_reversible()) is False
    assert j2k.irreversible(openjpeg.encode(IMAGE, bits_stored=12, compression_ratios=[10])) is True
    colour = np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    assert j2k.irreversible(openjpeg.encode(colour, photometric_interpretation=1, compression_ratios=[5])) is True
    assert j2k.irreversible(openjpeg.encode(colour, photometric_interpretation=1)) is False


def test_jp2_file_searched_for_its_codestream():
    assert j2k.irreversible(openjpeg.encode(IMAGE, bits_stored=12, compression_ratios=[10], codec_format=1)) is True
    assert j2k.irreversible(openjpeg.encode(IMAGE, bits_stored=12, codec_format=1)) is False


def test_a_component_coded_irreversibly_found():
    cs = _reversible()
    assert j2k.irreversible(_after_cod(cs, _coc_9_7())) is True
    # a COC choosing the reversible transform changes nothing
    assert j2k.irreversible(_after_cod(cs, _segment(0xFF53, bytes([0, 0, 5, 4, 4, 0, 1])))) is False


def test_tile_part_header_overriding_the_main_one_found():
    cs = _reversible()
    assert j2k.irreversible(_in_first_tile_part(cs, _cod_9_7())) is True
    assert j2k.irreversible(_in_first_tile_part(cs, _coc_9_7())) is True


@pytest.mark.parametrize("data", [b"", b"\x00" * 40, b"not a codestream", b"\xff\x4f\xff\x51\x00"])
def test_what_is_not_a_codestream_is_not_called_lossy(data):
    assert j2k.irreversible(data) is False


def test_cut_codestream_reads_what_it_has():
    lossy = openjpeg.encode(IMAGE, bits_stored=12, compression_ratios=[10])
    cod = lossy.index(b"\xff\x52")
    assert j2k.irreversible(lossy[:cod + 14]) is True  # the whole COD segment is there
    assert j2k.irreversible(lossy[:cod + 8]) is False  # cut inside it: not certain
