"""tus bodies straight from the ASGI receive channel.

Django's ASGI handler reads a whole request body into a SpooledTemporaryFile before the view
runs: a body larger than FILE_UPLOAD_MAX_MEMORY_SIZE goes to a temporary file, in clear, and the
view then reads it a second time. For tus appends (PATCH, and POST with creation-with-upload,
``Content-Type: application/offset+octet-stream``) this wrapper hands Django an empty body and
puts a ``BodyStream`` in the scope instead; the tus view reads it piece by piece as the bytes
arrive and encrypts them into the staging file. Nothing is held whole in memory or written in
clear, whatever the chunk size, so clients can send large chunks (fewer requests).

Every other request passes through untouched.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestAborted

SCOPE_KEY = "lightbox.tus_body"
OCTET = b"application/offset+octet-stream"
AHEAD = 4 * 1024 * 1024  # bytes received ahead of the reader, at most (per request)
POLL = 0.5    # seconds between checks of BodyStream.stop while no bytes arrive
STALL = 60    # seconds without a byte: the client is gone (as nginx's client_body_timeout)


class BodyStream:
    """The request body, read from the view's thread: ``read(n)`` returns up to ``n`` bytes
    (fewer only at the end), b"" at the end; raises ``RequestAborted`` if the client went away.

    From ``start()`` (as the request arrives), a task on the event loop keeps receiving up to
    AHEAD bytes ahead of the reader, so the network transfer goes on while Django authenticates
    the request and while the view encrypts and writes."""

    def __init__(self, receive, loop: asyncio.AbstractEventLoop):
        self._receive = receive
        self._loop = loop
        self._pieces: deque[bytes] = deque()
        self._buffered = 0
        self._want = 0                    # bytes the reader waits for
        self._arrived = asyncio.Event()   # more bytes, or the end
        self._room = asyncio.Event()      # fewer than AHEAD bytes buffered
        self._pump: asyncio.Task | None = None
        self._task: asyncio.Future | None = None
        self.more = True           # more body to come from the channel
        self.disconnected = False
        #: the reader has had the whole body (or learnt that the client left): only then may
        #: Django look for a disconnect, which would abandon the request (the body arrives
        #: before the view runs, so a client gone by then would lose what it sent)
        self.drained = asyncio.Event()
        #: set by the reader: called while waiting for bytes; True gives up as if disconnected
        self.stop: Callable[[], bool] | None = None

    async def _message(self) -> dict:
        """The next message; a disconnect after STALL seconds without one, or when ``stop``
        says so (a dropped connection is not always noticed: no FIN or RST ever arrives)."""
        idle = 0.0
        while True:
            if self._task is None:
                self._task = asyncio.ensure_future(self._receive())
            done, _ = await asyncio.wait({self._task}, timeout=POLL)
            if done:
                task, self._task = self._task, None
                return task.result()
            idle += POLL
            if idle >= STALL or (self.stop is not None and self.stop()):
                self._task.cancel()
                self._task = None
                return {"type": "http.disconnect"}

    async def _run_pump(self) -> None:
        try:
            while self.more:
                if self._buffered >= max(AHEAD, self._want):
                    self._room.clear()
                    await self._room.wait()
                    continue
                message = await self._message()
                if message["type"] == "http.disconnect":
                    self.disconnected = True
                    self.more = False
                    break
                body = message.get("body", b"")
                if body:
                    self._pieces.append(body)
                    self._buffered += len(body)
                self.more = bool(message.get("more_body", False))
                self._arrived.set()
        finally:
            self.more = False
            self._arrived.set()

    def start(self) -> None:
        """Begin receiving (on the event loop); at most AHEAD bytes are held until the view reads."""
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._run_pump())

    async def _take(self, n: int) -> bytes:
        self.start()
        self._want = n
        self._room.set()
        while self._buffered < n and self.more:
            self._arrived.clear()
            await self._arrived.wait()
        parts, want = [], n
        while want and self._pieces:
            piece = self._pieces.popleft()
            if len(piece) > want:
                self._pieces.appendleft(piece[want:])
                piece = piece[:want]
            parts.append(piece)
            want -= len(piece)
        out = b"".join(parts)
        self._buffered -= len(out)
        if not self.more and not self._buffered:
            self.drained.set()
        if self._buffered < AHEAD:
            self._room.set()
        return out

    def read(self, n: int) -> bytes:
        """Blocking read for the sync view (one hop to the event loop per call)."""
        data = asyncio.run_coroutine_threadsafe(self._take(n), self._loop).result()
        if not data and self.disconnected:
            raise RequestAborted("the client disconnected during the request body")
        return data

    def close(self) -> None:
        """The request is over: stop receiving (on the event loop)."""
        for task in (self._pump, self._task):
            if task is not None and not task.done():
                task.cancel()


def _header(scope: dict[str, Any], name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return b""


def _is_tus_append(scope: dict[str, Any], prefix: str) -> bool:
    return (scope["type"] == "http" and scope.get("method") in ("PATCH", "POST")
            and scope.get("path", "").startswith(prefix)
            and _header(scope, b"content-type").split(b";")[0].strip().lower() == OCTET)


def tus_body_passthrough(app):
    """Wrap the Django ASGI application (see the module docstring)."""
    prefix: list[str] = []

    async def application(scope, receive, send):
        if not prefix:
            from django.urls import reverse

            prefix.append(reverse("imaging:tus_root"))
        if not _is_tus_append(scope, prefix[0]):
            return await app(scope, receive, send)
        stream = BodyStream(receive, asyncio.get_running_loop())
        # the first AHEAD bytes arrive while the middleware and the view's checks run (the client
        # waits for nothing); what a refused request sent is dropped with the stream
        stream.start()
        served = False

        async def django_receive():
            nonlocal served
            if not served:  # the body Django reads itself: empty (the view reads the stream)
                served = True
                return {"type": "http.request", "body": b"", "more_body": False}
            # Django listens for a disconnect after the body; the channel is the view's until
            # the body has been read (or the view has answered and this task is cancelled)
            await stream.drained.wait()
            return await receive()

        try:
            return await app({**scope, SCOPE_KEY: stream}, django_receive, send)
        finally:
            stream.close()

    return application


def body_stream(request) -> BodyStream | None:
    """The request's ``BodyStream`` when served through ``tus_body_passthrough``, else None."""
    return getattr(request, "scope", {}).get(SCOPE_KEY)
