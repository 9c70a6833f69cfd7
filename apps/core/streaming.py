"""Response bodies made of many small pieces read from the database (the audit exports), served
as Django's handler wants them: a generator under WSGI, an async iterator under ASGI.

Under ASGI (production runs uvicorn) Django sends a ``StreamingHttpResponse`` from the event
loop; handed a *sync* iterator, it first reads it whole into a list ("StreamingHttpResponse must
consume synchronous iterators in order to serve them asynchronously"): a trail of millions of
events rendered into memory before the first byte, the worker killed or the proxy timing out.
Here the pieces are pulled ``batch`` at a time in the request's sync thread (``sync_to_async``:
the database is never touched from the event loop), and each batch is sent before the next is
read. The iterator should read the database a page at a time (``apps.audit.selectors.
events_in_order``): a cursor held open across the hops would tie a transaction to the response.

The renditions downloads (``apps.renditions.views._async_stream``) stream files, not database
pages: a dedicated worker thread decrypting ahead and a policy re-check, which these do not need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.http import HttpRequest


def _take(pieces: Iterator, count: int):
    """The next ``count`` pieces of ``pieces`` joined, None when it is exhausted."""
    taken = []
    for piece in pieces:
        taken.append(piece)
        if len(taken) >= count:
            break
    if not taken:
        return None
    return taken[0][:0].join(taken)


def _sync_body(pieces: Iterator, batch: int) -> Iterator:
    try:
        while (chunk := _take(pieces, batch)) is not None:
            yield chunk
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


async def _async_body(pieces: Iterator, batch: int) -> AsyncIterator:
    take = sync_to_async(_take)
    try:
        while (chunk := await take(pieces, batch)) is not None:
            yield chunk
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            await sync_to_async(close)()  # the generator's own cleanup, in the sync thread


def response_body(request: HttpRequest, pieces: Iterator, *, batch: int) -> Iterator | AsyncIterator:
    """``pieces`` (str or bytes) as the body of a ``StreamingHttpResponse`` to ``request``:
    sent ``batch`` pieces at a time, read in the sync thread under ASGI (module docstring)."""
    from django.core.handlers.asgi import ASGIRequest

    if isinstance(request, ASGIRequest):
        return _async_body(pieces, batch)
    return _sync_body(pieces, batch)
