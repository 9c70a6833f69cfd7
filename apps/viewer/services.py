"""Frames for the in-browser viewer: parse a frame request, name it (ETag), render it.

Renditions of a frame (``quality``):
- ``low``: a small lossy JPEG (at most 256 px) shown first on slow links, while dragging a
  window, and as series thumbnails;
- ``preview``: a lossy JPEG (or WebP) of at most 1024 px;
- ``diagnostic``: a lossless PNG at full resolution. Only for actors who may have originals
  (the view checks the policy); a file already marked lossy (0028,2110 = 01, or a lossy-only
  transfer syntax) is rendered but labelled ``lossy`` and never ``diagnostic``; one reduced by
  ``size`` is labelled ``preview``.

The label a frame carries (``RenderedFrame.label``) is what the viewer shows: it follows the
pixels actually served.

Rendering a frame costs several times its decoded size (a 16000 x 16000 8-bit frame, at
``LIGHTBOX_MAX_FRAME_BYTES``, about 1.5 GB at its peak, even for a 64 px thumbnail), and each
frame request runs in a thread of its own (a sync view under ASGI): a process renders at most
``LIGHTBOX_VIEWER_RENDERS_AT_ONCE`` frames at a time (``render_slot``); a request that finds none
free within ``RENDER_WAIT_SECONDS`` is answered "busy" (the view's 503 with ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from django.conf import settings

from apps.imaging import pixels

QUALITIES = ("low", "preview", "diagnostic")
LIMITS = {"low": 256, "preview": 1024, "diagnostic": 4096}
JPEG_QUALITY = {"low": 60, "preview": 88}
RENDER_VERSION = "7"  # bump when rendering (or a label) changes, so cached frames are not reused

LABEL_DIAGNOSTIC = "diagnostic"
LABEL_PREVIEW = "preview"
LABEL_LOSSY = "lossy"


class BadFrameRequest(ValueError):
    pass


class RendersBusy(Exception):
    """Every render slot of this process stayed taken for ``RENDER_WAIT_SECONDS``."""


#: how long a frame request waits for a render slot before it is answered "busy"
RENDER_WAIT_SECONDS = 2.0
_slots_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


def render_slots() -> threading.BoundedSemaphore:
    """This process's render slots: ``LIGHTBOX_VIEWER_RENDERS_AT_ONCE`` (at least one), made on
    first use (made anew if the setting changed, as tests change it: a render under way releases
    the semaphore it took)."""
    global _slots
    size = max(1, int(settings.LIGHTBOX_VIEWER_RENDERS_AT_ONCE))
    with _slots_lock:
        if _slots is None or _slots[0] != size:
            _slots = (size, threading.BoundedSemaphore(size))
        return _slots[1]


@contextmanager
def render_slot(*, wait: float | None = None) -> Iterator[None]:
    """Hold one of the process's render slots while the block runs (released however it ends:
    a frame that cannot be decoded does not keep one). Raises RendersBusy when none is free
    within ``wait`` seconds (``RENDER_WAIT_SECONDS``)."""
    slots = render_slots()
    if not slots.acquire(timeout=RENDER_WAIT_SECONDS if wait is None else wait):
        raise RendersBusy
    try:
        yield
    finally:
        slots.release()


@dataclass(frozen=True)
class FrameRequest:
    frame: int = 0
    center: float | None = None
    width: float | None = None
    size: int | None = None
    quality: str = "preview"
    fmt: str = "jpeg"  # for low/preview: jpeg or webp

    @property
    def max_size(self) -> int | None:
        limit = LIMITS[self.quality]
        if self.size is None:
            return None if self.quality == "diagnostic" else limit
        return min(self.size, limit)


def _number(value: str | None, kind: type, *, low: float, high: float) -> Any:
    if value in (None, ""):
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError) as exc:
        raise BadFrameRequest(value) from exc
    if not low <= number <= high or number != number:  # also refuses NaN
        raise BadFrameRequest(value)
    return number


def parse_frame_request(query: Any) -> FrameRequest:
    """A FrameRequest from query parameters (frame, center, width, size, quality, format);
    raises BadFrameRequest for values out of range."""
    quality = query.get("quality") or "preview"
    if quality not in QUALITIES:
        raise BadFrameRequest(quality)
    fmt = query.get("format") or "jpeg"
    if fmt not in ("jpeg", "webp"):
        raise BadFrameRequest(fmt)
    center = _number(query.get("center"), float, low=-1e7, high=1e7)
    width = _number(query.get("width"), float, low=1.0, high=1e7)
    if (center is None) != (width is None):
        raise BadFrameRequest("center and width go together")
    return FrameRequest(frame=_number(query.get("frame"), int, low=0, high=100_000) or 0,
                        center=center, width=width, size=_number(query.get("size"), int, low=16, high=4096),
                        quality=quality, fmt=fmt)


def frame_etag(instance: Any, request: FrameRequest) -> str:
    """A strong ETag for this instance's content and these rendering parameters (computed
    without reading the blob, so a revalidation costs a policy check and no decoding)."""
    key = "|".join(str(v) for v in (RENDER_VERSION, instance.sha256, request.frame, request.center, request.width,
                                      request.max_size, request.quality, request.fmt))
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


PNG_BLOCK_BYTES = 1 << 20  # rows are filtered and compressed about this many bytes at a time


def encode_png(image: Any, *, level: int = 3, out: IO[bytes] | None = None) -> bytes:
    """A lossless 8-bit PNG (gray or RGB) of a PIL image, written directly with zlib.

    Pillow's encoder tries PNG's row filters adaptively, which for windowed CT with scanner noise
    costs twice the time for a few percent of size; rows here are unfiltered (filter type 0).

    The rows are taken, filtered and compressed a block of about ``PNG_BLOCK_BYTES`` at a time, each
    block's compressed bytes an IDAT chunk of their own (the image data is the concatenation of the
    IDAT chunks): the image, its filtered rows, their compressed stream and the file were each a
    whole copy of the frame, four for an RGB frame of noise, which does not compress. With ``out``
    the file is written there (and ``b""`` returned)."""
    sink = io.BytesIO() if out is None else out
    width, height = image.size
    channels = len(image.getbands())
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    sink.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header))
    rows = max(1, PNG_BLOCK_BYTES // max(width * channels, 1))
    compressor = zlib.compressobj(level)
    for top in range(0, height, rows):
        block = np.asarray(image.crop((0, top, width, min(top + rows, height))), dtype=np.uint8)
        raw = np.zeros((block.shape[0], width * channels + 1), dtype=np.uint8)
        raw[:, 1:] = block.reshape(block.shape[0], -1)
        if data := compressor.compress(raw):
            sink.write(_png_chunk(b"IDAT", data))
    sink.write(_png_chunk(b"IDAT", compressor.flush()) + _png_chunk(b"IEND", b""))
    return sink.getvalue() if out is None else b""


@dataclass(frozen=True)
class RenderedFrame:
    body: bytes
    content_type: str
    label: str  # diagnostic | preview | lossy
    center: float
    width: float
    default_center: float
    default_width: float
    rows: int
    columns: int
    frames: int


def frame_render(*, src: Any, request: FrameRequest) -> RenderedFrame:
    """Render one frame of ``src`` (an Instance, path or file) as the request asks. Raises
    pixels.UndecodableFrame for files that cannot be decoded. No policy check here: the view
    has made it."""
    decoded = pixels.load_frame(src, request.frame)
    default_center, default_width = pixels.window_for(decoded)
    center = default_center if request.center is None else request.center
    width = default_width if request.width is None else request.width
    image = pixels.image_from(decoded, center=center, width=width, invert=None, max_size=request.max_size,
                              consume=True)
    # the frame's pixels (overwritten by the window) are not kept while the image is encoded
    info, shape = decoded.info, decoded.pixels.shape
    del decoded
    out = io.BytesIO()
    if request.quality == "diagnostic":
        encode_png(image, out=out)
        content_type = "image/png"
        # fewer pixels than the original (``size`` asked for less) is not the diagnostic original
        reduced = image.size != (shape[1], shape[0])
        label = LABEL_LOSSY if info.lossy else LABEL_PREVIEW if reduced else LABEL_DIAGNOSTIC
    elif request.fmt == "webp":
        image.save(out, format="WEBP", quality=JPEG_QUALITY[request.quality])
        content_type, label = "image/webp", LABEL_PREVIEW
    else:
        image.save(out, format="JPEG", quality=JPEG_QUALITY[request.quality])
        content_type, label = "image/jpeg", LABEL_PREVIEW
    return RenderedFrame(body=out.getvalue(), content_type=content_type, label=label, center=center, width=width,
                         default_center=default_center, default_width=default_width,
                         rows=info.rows, columns=info.columns, frames=info.frames)
