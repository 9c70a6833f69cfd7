"""Viewer sessions: opened when the page is served, closed once (beacon or idle sweep), audited.

viewer.opened is recorded when the page is served; viewer.closed when the page is left (a beacon
on ``pagehide``, ``reason: closed``) or, for a tab that vanished without one (crash, lost
network, laptop lid), by ``viewer_sessions_close_idle`` after LIGHTBOX_VIEWER_IDLE_MINUTES with
no frame and no activity (``reason: timeout``), or when the browser session that opened it is
signed out (``reason: signed_out``, apps.viewer.signals). Closing is a conditional UPDATE on
``closed_at IS NULL``: the beacon and the sweep can race, one wins, one event."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.audit import actions as audit_actions
from apps.audit.services import record
from apps.viewer.models import ViewerSession

#: a frame or heartbeat moves last_seen_at at most this often (one UPDATE a minute, not per frame)
TOUCH_EVERY = timedelta(seconds=60)


def viewer_session_open(*, study: Any, user: Any, actor: Any, actor_label: str, request: HttpRequest,
                        details: dict[str, Any]) -> ViewerSession:
    """Start a session and record viewer.opened (``details.session`` = its key)."""
    with transaction.atomic():
        session = ViewerSession.objects.create(key=uuid.uuid4().hex, organization_id=study.organization_id,
                                               study=study, user=user, actor_label=actor_label)
        record(action=audit_actions.VIEWER_OPENED, actor=actor, actor_label=actor_label,
               organization_id=study.organization_id, target=study, request=request,
               details={"session": session.key, **details})
    return session


def viewer_session_touch(*, key: str, now: datetime | None = None) -> bool:
    """The session is in use (a frame, a heartbeat). False when it is closed (the idle sweep, the
    page's close) or unknown: what is read next belongs to a new session."""
    now = now or timezone.now()
    open_ = ViewerSession.objects.filter(key=key, closed_at__isnull=True)
    return bool(open_.filter(last_seen_at__lt=now - TOUCH_EVERY).update(last_seen_at=now)) or open_.exists()


#: how long after its page closed a session (the beacon, as the page is left) a frame the page
#: asked for before it left may still arrive: it belongs to that session, recorded and closed
LATE_FRAME_GRACE = timedelta(seconds=10)


def viewer_session_left_just_now(*, key: str, study: Any, user: Any, actor_label: str,
                                 now: datetime | None = None) -> bool:
    """The session of ``study`` was closed by its own page (reason "closed") within
    ``LATE_FRAME_GRACE`` and was opened by the person the frame request is from now (``user``,
    None for an anonymous link holder, and ``actor_label``, as ``viewer_session_open`` stores
    them): a frame sent with its key (a secret only that page held) is one the leaving page asked
    for, not a new reading (which, later, or after the idle sweep, opens a new recorded session).

    Whoever it is from matters: Django keeps a browser session's data when a link holder signs
    in, so a frame sent with the key of the page a link holder just left may already be the
    signed-in person's. It is their reading, recorded as theirs, never added to the link
    holder's closed session (nor the other way round after a sign-out)."""
    now = now or timezone.now()
    user_id = user.pk if getattr(user, "is_authenticated", False) else None
    return ViewerSession.objects.filter(key=key, study=study, close_reason="closed",
                                        closed_at__gte=now - LATE_FRAME_GRACE,
                                        user_id=user_id, actor_label=actor_label).exists()


def viewer_session_close(*, key: str, reason: str, frames: int | None = None,
                         request: HttpRequest | None = None, now: datetime | None = None) -> bool:
    """Close the session once and record viewer.closed; False if it was closed already."""
    now = now or timezone.now()
    with transaction.atomic():
        if not ViewerSession.objects.filter(key=key, closed_at__isnull=True) \
                .update(closed_at=now, close_reason=reason):
            return False
        session = ViewerSession.objects.select_related("study", "user").get(key=key)
        until = session.last_seen_at if reason == "timeout" else now
        details: dict[str, Any] = {"session": key, "seconds": max(0, int((until - session.opened_at).total_seconds())),
                                   "reason": reason}
        if frames is not None:
            details["frames"] = frames
        # recorded even when the grant has ended meanwhile: the session it closes was authorized
        record(action=audit_actions.VIEWER_CLOSED, actor=session.user, actor_label=session.actor_label,
               organization_id=session.organization_id, target=session.study, request=request, details=details)
    return True


#: close_reason of the viewer sessions a sign-out ended (any ``logout()``: the person's "Sign
#: out", the idle limit's, a single sign-on session ended): their page can no longer close them
#: (its beacon, sent as it is left, comes from a browser already signed out)
SIGNED_OUT = "signed_out"


def viewer_sessions_close_signed_out(*, keys: Iterable[str], request: HttpRequest | None = None,
                                     now: datetime | None = None) -> int:
    """Close the viewer sessions ``keys`` (the ones the browser session being signed out opened
    for the person signing out) as the page's close does, reason ``signed_out``, at the moment of
    the sign-out; how many were still open. A session closed already (by its beacon, or the idle
    sweep) is not closed again."""
    now = now or timezone.now()
    return sum(viewer_session_close(key=key, reason=SIGNED_OUT, request=request, now=now) for key in keys)


def viewer_sessions_close_idle(*, now: datetime | None = None) -> int:
    """Close every open session idle for longer than LIGHTBOX_VIEWER_IDLE_MINUTES (reason
    ``timeout``). Safe to run twice: a closed session is not closed again."""
    now = now or timezone.now()
    limit = now - timedelta(minutes=settings.LIGHTBOX_VIEWER_IDLE_MINUTES)
    keys = list(ViewerSession.objects.filter(closed_at__isnull=True, last_seen_at__lt=limit)
                .order_by("last_seen_at").values_list("key", flat=True)[:5000])
    return sum(viewer_session_close(key=key, reason="timeout", now=now) for key in keys)
