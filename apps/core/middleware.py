"""Request-wide settings of apps.core: caching, the reader's time zone, and the tasks that run once
the response has been sent (``AfterResponseMiddleware``).

Responses are not kept by browsers or proxies unless their view says otherwise.

Nearly every page of the portal carries patient data (names, MRNs, report notes) or a secret
(a share link's page, an invitation). A browser keeps pages in its disk cache unless told not
to, and a hospital workstation is shared: the next user could read them back from the cache
after the first signed out. So every response that has not chosen its own policy is sent with
``Cache-Control: no-store`` (Django's ``add_never_cache_headers``). Views that do choose keep
their choice: the viewer's frames (``private, no-store``: viewer.js keeps them in memory),
downloads. Static files never reach this middleware (WhiteNoise answers them above it).
"""

from __future__ import annotations

import functools
import logging
import threading
import zoneinfo
from collections.abc import Callable
from contextvars import ContextVar
from urllib.parse import unquote

from django.conf import settings
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

logger = logging.getLogger(__name__)

#: the browser's own time zone (an IANA name), written by static/js/timezone.js
TIME_ZONE_COOKIE = "lightbox_tz"


#: set on a request that signed its user out (apps.accounts.signals): its response asks the
#: browser to forget what this site kept (``Clear-Site-Data``)
SIGNED_OUT = "lightbox_signed_out"


class PrivateByDefaultMiddleware:
    """No page is cached unless its view chose how (``Cache-Control``), and signing out makes the
    browser forget what the site kept in it: a shared workstation's next user finds neither what
    its cache may hold nor the upload page's resumable uploads (file names, cases and upload
    addresses in localStorage). Cookies are the session's, ended by the sign-out itself (and the
    time zone's, kept). A sign-out is the user's, or the idle sign-out's (both end in ``logout``).

    A session that ended without a sign-out the server saw (its time was up: the browser still
    sends its cookie, the session is gone) is answered with ``Clear-Site-Data: "cache"`` on the
    first request that shows it: the cache only (the upload page shows its resumable uploads to
    their owner alone, who may come back to resume them). A session ended by closing the browser
    sends no cookie, so nothing tells the server: what it served with patient data, the viewer's
    frames included, is ``no-store``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        if getattr(request, SIGNED_OUT, False):
            response["Clear-Site-Data"] = '"cache", "storage"'
        elif _session_ended(request):
            response["Clear-Site-Data"] = '"cache"'
        return response


def _session_ended(request) -> bool:
    """The request carried a session cookie whose session is no more (expired, or ended on the
    server): Django's SessionMiddleware deletes that cookie from this response. Only once the
    session was read (every signed-in page's is), so a cookie that was not checked says nothing."""
    session = getattr(request, "session", None)
    if session is None or not request.COOKIES.get(settings.SESSION_COOKIE_NAME):  # none, or deleted
        return False
    try:
        return session.is_empty()
    except AttributeError:
        return False


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_named(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The time zone called ``name``, if there is one by that IANA name (anything else: None)."""
    name = unquote(name or "")[:64]  # a script may have written it URL-encoded
    return zoneinfo.ZoneInfo(name) if name in _zone_names() else None


class TimeZoneMiddleware:
    """Times are shown, and typed into forms, in the reader's own time zone: care teams and
    consultants work from several. static/js/timezone.js keeps the browser's zone in a cookie;
    without it (a first page, no JavaScript) the server's ``TIME_ZONE`` applies. Every page says
    which zone its times are in (the footer, and each date-and-time field's label)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = zone_named(request.COOKIES.get(TIME_ZONE_COOKIE))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


#: the tasks waiting for the responses of the request being answered, where the ASGI handler
#: (apps.core.asgi) runs what is left of them once Django is done with the request (a client that
#: left before the response: Django closes no response then); None elsewhere (WSGI, tests)
requests_waiting: ContextVar[list[AfterResponse] | None] = ContextVar("lightbox_requests_waiting", default=None)


class AfterResponse:
    """The eager runs one request queued to wait for its response: ``run`` runs each once,
    whoever calls it first (the response's close, or the ASGI handler's end)."""

    def __init__(self) -> None:
        self.runs: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def left(self) -> bool:
        return bool(self.runs)

    def names(self) -> list[str]:
        """The waiting tasks' names (never their arguments), for logs."""
        return [_task_name(run) for run in list(self.runs)]

    def run(self) -> None:
        while True:
            with self._lock:
                if not self.runs:
                    return
                run = self.runs.pop(0)
            run()


def _task_name(run: Callable[[], None]) -> str:
    task = (getattr(run, "args", None) or (None,))[0]  # queue._send's partial(_run_in_process, task, args)
    return str(getattr(task, "name", None) or getattr(run, "__qualname__", "?"))


class AfterResponseMiddleware:
    """Runs the eager tasks that wait for the response (``eager_after_response``,
    apps.core.queue) once the response has been sent: Django closes a response after the server
    has sent its last byte (WSGI and ASGI alike), and runs its closers then. Outermost, so that
    every other middleware's work is in the answer's time and the response it hands on is the one
    sent. A run that fails is logged by ``_run_in_process``, as a worker would.

    Under ASGI a client that leaves before the response has none closed (Django cancels the
    request): the portal's ASGI handler (apps.core.asgi) runs then what is still waiting, each
    once. Where nothing will (no response, no such handler), what is dropped is logged."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from apps.core import queue

        after = AfterResponse()
        handler_runs_left = requests_waiting.get()
        if handler_runs_left is not None:
            handler_runs_left.append(after)
        token = queue.after_response.set(after.runs)
        try:
            response = self.get_response(request)
        except BaseException:
            if handler_runs_left is None and after.left():
                logger.error("the request ended without a response: %d task(s) waiting for it dropped (%s)",
                             len(after.runs), ", ".join(after.names()))
            raise
        finally:
            queue.after_response.reset(token)
        # Django's list of what close() runs (FileResponse closes its file through it)
        response._resource_closers.append(after.run)
        return response
