"""The portal's ASGI handler: Django's, with two changes.

A request body waits encrypted. Django's ``ASGIHandler.read_body`` puts the whole body in a
``SpooledTemporaryFile``: past ``FILE_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB) it is a file in the
system's temporary folder, in clear (a case's report PDF naming the patient, a form's fields),
its blocks left on the disk after it is closed. Here a body up to that size is held in memory, as
there, and a larger one waits in an ``apps.core.spool`` (AES-256-CTR under a key held only in
memory). tus appends never come this far with their bytes (apps.imaging.asgi streams them).

The tasks that wait for the response run even when the client left first.
``AfterResponseMiddleware`` hands them to the response, whose ``close()`` runs them once it has
been sent; but when Django sees the client disconnect before the response is sent, it cancels
the request and never closes a response. Every request's waiting tasks are also known here (a
list in a context variable the middleware finds), and whatever is still waiting once Django is
done with the request runs then: an upload whose last PATCH the client did not wait for is
ingested all the same, an e-mailed sign-in link is sent. Each runs once, whichever comes first.
"""

from __future__ import annotations

import io
import logging

import django
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler

from apps.core import spool

logger = logging.getLogger(__name__)


class PortalASGIHandler(ASGIHandler):
    """Django's ASGI handler; the request body encrypted past the memory limit, and the tasks
    waiting for the response run when the client left before it (module docstring)."""

    async def handle(self, scope, receive, send):
        from apps.core.middleware import requests_waiting

        waiting: list = []
        token = requests_waiting.set(waiting)
        try:
            await super().handle(scope, receive, send)
        finally:
            requests_waiting.reset(token)
            if any(after.left() for after in waiting):
                await sync_to_async(_run_left)(waiting)

    async def read_body(self, receive):
        """The body, as Django reads it, held in memory up to ``FILE_UPLOAD_MAX_MEMORY_SIZE``
        and in an encrypted spool past it (never a temporary file in clear)."""
        limit = settings.FILE_UPLOAD_MAX_MEMORY_SIZE
        body: io.BytesIO | spool.EncryptedSpool = io.BytesIO()
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise RequestAborted()  # an early client disconnect, as Django's
                chunk = message.get("body", b"")
                if chunk:
                    if isinstance(body, io.BytesIO) and body.tell() + len(chunk) > limit:
                        spooled = spool.spool()
                        with body.getbuffer() as held:
                            spooled.write(held)
                        body.close()
                        body = spooled
                    body.write(chunk)
                if not message.get("more_body", False):
                    break
        except BaseException:
            body.close()
            raise
        body.seek(0)
        return body


def _run_left(waiting: list) -> None:
    """Run what the requests' responses did not (Django closed none: the client left first)."""
    from django.db import close_old_connections

    try:
        for after in waiting:
            names = after.names()
            if names:
                logger.warning("the client left before the response: %d task(s) waiting for it run now (%s)",
                               len(names), ", ".join(names))
                after.run()
    finally:
        close_old_connections()  # as request_finished does, which Django sent before these ran


def get_asgi_application() -> PortalASGIHandler:
    """As ``django.core.asgi.get_asgi_application``, with the portal's handler."""
    django.setup(set_prefix=False)
    return PortalASGIHandler()
