"""JPEG 2000 codestreams: whether one was certainly coded with loss.

A DICOM file in a JPEG 2000 transfer syntax that allows lossy coding (1.2.840.10008.1.2.4.91,
Part 2's .93, HTJ2K's .203) may not say Lossy Image Compression (0028,2110) = 01, and then it
would be labelled diagnostic-grade and given a "lossless" copy. The codestream itself says which
wavelet transform it used (ITU-T T.800 A.6.1, the COD and COC marker segments): the 9-7
irreversible transform (value 0) cannot give back the stored values, so such a frame is lossy
whatever the header says. The 5-3 reversible transform does not prove the opposite (a reversible
codestream can still have been cut short by rate control), so a frame that uses it is left to the
header's flag, as before.

- ``irreversible(codestream) -> bool``: whether any COD or COC marker segment of the main header
  or of a tile-part header chooses the 9-7 irreversible transform. A JP2 file (boxes around the
  codestream, as some writers put in DICOM) is searched for its codestream. Anything that cannot
  be read as a codestream is False: this module only adds certainty of loss, the decoder reports
  damaged data.
"""

from __future__ import annotations

import struct

#: the transfer syntaxes whose pixel data are JPEG 2000 or HTJ2K codestreams (PS3.5 A.4.4, A.4.6, A.4.11)
TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
})

_SOC_SIZ = b"\xff\x4f\xff\x51"
_SIZ, _COD, _COC, _SOT, _SOD, _EOC = 0xFF51, 0xFF52, 0xFF53, 0xFF90, 0xFF93, 0xFFD9
_IRREVERSIBLE_9_7 = 0
#: JP2 boxes come before the codestream; a codestream that does not start within this many bytes is not looked for
_JP2_SEARCH = 65536


def irreversible(codestream: bytes) -> bool:
    """Whether ``codestream`` (one frame's JPEG 2000 data, raw or in a JP2 file) uses the 9-7
    irreversible wavelet transform in any of its COD or COC marker segments."""
    start = codestream.find(_SOC_SIZ, 0, _JP2_SEARCH)
    if start < 0:
        return False
    try:
        return any(transform == _IRREVERSIBLE_9_7 for transform in _transforms(memoryview(codestream)[start:]))
    except (struct.error, IndexError):  # cut inside a marker segment: what was read before counts
        return False


def _transforms(cs: memoryview):
    """The wavelet transform of every COD and COC segment: the main header's, then each tile-part
    header's (their SOT segments say how long each tile-part is)."""
    components = 0
    pos = 2  # after SOC
    while pos + 4 <= len(cs):
        marker, length = struct.unpack_from(">HH", cs, pos)
        if marker >> 8 != 0xFF or length < 2:
            return
        segment = cs[pos + 4:pos + 2 + length]
        if marker == _SIZ:
            components = struct.unpack_from(">H", segment, 34)[0]  # Rsiz, 8 sizes and offsets of 4 bytes, Csiz
        elif marker == _COD:
            yield segment[9]  # Scod, SGcod (progression, layers x2, MCT), SPcod: levels, xcb, ycb, style, transform
        elif marker == _COC:
            yield segment[(1 if components < 257 else 2) + 5]  # Ccoc, Scoc, SPcoc: levels, xcb, ycb, style, transform
        elif marker == _SOT:
            yield from _tile_parts(cs, pos, components)
            return
        pos += 2 + length


def _tile_parts(cs: memoryview, pos: int, components: int):
    while pos + 12 <= len(cs) and struct.unpack_from(">H", cs, pos)[0] == _SOT:
        tile_part_length = struct.unpack_from(">I", cs, pos + 6)[0]  # Psot: from this SOT to the tile-part's end
        header = pos + 12
        while header + 4 <= len(cs):
            marker, length = struct.unpack_from(">HH", cs, header)
            if marker in (_SOD, _EOC) or marker >> 8 != 0xFF or length < 2:
                break
            segment = cs[header + 4:header + 2 + length]
            if marker == _COD:
                yield segment[9]
            elif marker == _COC:
                yield segment[(1 if components < 257 else 2) + 5]
            header += 2 + length
        if tile_part_length < 12:  # 0: the last tile-part runs to the end of the codestream
            return
        pos += tile_part_length
