"""Viewer sessions: opened when the page is served, closed once by the page's beacon or, for a
tab that vanished, by the idle sweep (reason "timeout"); only the browser's own sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.viewer.models import ViewerSession
from apps.viewer.tasks import viewer_sessions_close_idle_task
from tests.factories import open_anonymous_link

pytestmark = pytest.mark.django_db


def _open(client, study) -> str:
    assert client.get(reverse("viewer:viewer", kwargs={"study_id": study.public_id})).status_code == 200
    return AuditEvent.objects.filter(action="viewer.opened").latest("id").details["session"]


def _idle(key: str, minutes: float) -> None:
    ViewerSession.objects.filter(key=key).update(last_seen_at=timezone.now() - timedelta(minutes=minutes))


def _closed(study):
    return AuditEvent.objects.filter(action="viewer.closed", study_ref=study.public_id)


def test_opening_records_a_session_the_page_carries(client_as, clinician_a, ct_study):
    client = client_as(clinician_a)
    page = client.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    event = AuditEvent.objects.get(action="viewer.opened")
    key = event.details["session"]
    assert key.encode() in page.content
    session = ViewerSession.objects.get(key=key)
    assert (session.user, session.study, session.closed_at) == (clinician_a, ct_study, None)
    assert event.organization_id == ct_study.organization_id and event.study_ref == ct_study.public_id


def test_idle_sessions_are_closed_once_with_reason_timeout(client_as, clinician_a, ct_study):
    client = client_as(clinician_a)
    idle, busy = _open(client, ct_study), _open(client, ct_study)
    _idle(idle, settings.LIGHTBOX_VIEWER_IDLE_MINUTES + 1)
    _idle(busy, settings.LIGHTBOX_VIEWER_IDLE_MINUTES - 1)
    assert viewer_sessions_close_idle_task() == 1
    assert viewer_sessions_close_idle_task() == 0  # safe to run twice
    event = _closed(ct_study).get()
    assert event.details["session"] == idle and event.details["reason"] == "timeout"
    assert event.actor == clinician_a and event.outcome == "allowed"
    # the page's beacon after the sweep adds nothing
    close = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert client.post(close, {"session": idle}).status_code == 204
    assert _closed(ct_study).count() == 1
    # the busy one closes by its beacon, reason "closed"
    assert client.post(close, {"session": busy, "frames": "4"}).status_code == 204
    assert _closed(ct_study).get(details__session=busy).details["reason"] == "closed"
    assert viewer_sessions_close_idle_task() == 0


def test_frames_and_heartbeats_keep_a_session_from_the_sweep(client_as, clinician_a, ct_study):
    client = client_as(clinician_a)
    key = _open(client, ct_study)
    instance = ct_study.phantom_instances[0]
    frame = reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + "?frame=0&quality=low"
    _idle(key, settings.LIGHTBOX_VIEWER_IDLE_MINUTES + 1)
    assert client.get(frame, HTTP_X_LIGHTBOX_VIEWER_SESSION=key).status_code == 200
    assert viewer_sessions_close_idle_task() == 0
    _idle(key, settings.LIGHTBOX_VIEWER_IDLE_MINUTES + 1)
    heartbeat = reverse("viewer:heartbeat", kwargs={"study_id": ct_study.public_id})
    assert client.post(heartbeat, {"session": key}).status_code == 204
    assert viewer_sessions_close_idle_task() == 0
    assert not _closed(ct_study).exists()


def test_another_browser_cannot_close_or_keep_alive_a_session(client_as, clinician_a, ct_study):
    from tests.factories import member

    key = _open(client_as(clinician_a), ct_study)
    colleague = client_as(member(ct_study.organization, "radiologist", email="colleague@alpha.example"))
    close = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    heartbeat = reverse("viewer:heartbeat", kwargs={"study_id": ct_study.public_id})
    _idle(key, settings.LIGHTBOX_VIEWER_IDLE_MINUTES + 1)
    assert colleague.post(close, {"session": key}).status_code == 204
    assert colleague.post(heartbeat, {"session": key}).status_code == 204
    assert not _closed(ct_study).exists()
    assert viewer_sessions_close_idle_task() == 1  # the heartbeat of a stranger did not count


def test_close_needs_the_csrf_token(clinician_a, ct_study):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician_a)
    key = _open(client, ct_study)
    close = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert client.post(close, {"session": key}).status_code == 403
    assert client.post(close, {"session": key, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}) \
        .status_code == 204
    assert _closed(ct_study).count() == 1


def test_the_sweep_is_scheduled():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "apps.viewer.tasks.viewer_sessions_close_idle_task" in tasks


def _open_as_link_holder(client, study, sharer) -> str:
    """The key of a viewer session ``client`` opened on ``study`` through an anonymous link."""
    from apps.sharing import services as sharing
    from apps.sharing.usecases import RecipientKind, UseCase

    org = study.organization
    org.anonymous_links_enabled = True
    org.save()
    _grant, _link, raw = sharing.share_create(case=study.case, by=sharer, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS)
    assert open_anonymous_link(client, raw).status_code == 302
    return _open(client, study)


def test_signing_in_after_viewing_through_a_link_starts_a_session_of_ones_own(client, clinician_a, ct_study):
    """Django keeps the session's data when an anonymous visitor signs in (login() only cycles the
    key), so the viewer sessions a link holder opened in this browser are still listed after
    someone signs in. The person signed in does not read on under them: their first frame opens
    (and records) a session of their own, and the link holder's is neither kept alive nor closed
    from there (the idle sweep closes it)."""
    held = _open_as_link_holder(client, ct_study, clinician_a)
    assert ViewerSession.objects.get(key=held).user is None

    client.force_login(clinician_a)  # django.contrib.auth.login on this browser's session, as every sign-in path
    _idle(held, settings.LIGHTBOX_VIEWER_IDLE_MINUTES + 1)
    instance = ct_study.phantom_instances[0]
    frame = reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + "?frame=0&quality=low"
    assert client.get(frame, HTTP_X_LIGHTBOX_VIEWER_SESSION=held).status_code == 200
    own = ViewerSession.objects.exclude(key=held).get(study=ct_study)
    assert own.user == clinician_a and own.closed_at is None
    opened = AuditEvent.objects.filter(action="viewer.opened").latest("id")
    assert opened.details["session"] == own.key and opened.actor == clinician_a
    # the next frames extend their own session only
    assert client.get(frame, HTTP_X_LIGHTBOX_VIEWER_SESSION=held).status_code == 200
    assert ViewerSession.objects.filter(study=ct_study).count() == 2
    heartbeat = reverse("viewer:heartbeat", kwargs={"study_id": ct_study.public_id})
    close = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert client.post(heartbeat, {"session": held}).status_code == 204
    assert client.post(close, {"session": held}).status_code == 204
    assert not _closed(ct_study).exists()
    assert viewer_sessions_close_idle_task() == 1  # the link holder's, idle since the sign-in
    assert _closed(ct_study).get().details["session"] == held


def test_a_frame_after_signing_in_is_the_new_persons_even_within_the_grace(client, clinician_a, ct_study):
    """A link holder leaves the viewer (its beacon closes the session, reason "closed") and, less
    than LATE_FRAME_GRACE later, someone signs in on that browser. A frame still in flight from the
    leaving page belongs to the session it closed; but a frame sent with that key once the person
    has signed in is theirs: it opens (and records) a session of their own, never passes as the
    link holder's late frame."""
    held = _open_as_link_holder(client, ct_study, clinician_a)
    close = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert client.post(close, {"session": held}).status_code == 204
    frame = reverse("viewer:frame", kwargs={"instance_id": ct_study.phantom_instances[0].public_id}) + "?quality=low"
    opened = AuditEvent.objects.filter(action="viewer.opened", study_ref=ct_study.public_id)
    # the leaving page's own late frame: the grace the beacon's race needs
    assert client.get(frame, HTTP_X_LIGHTBOX_VIEWER_SESSION=held).status_code == 200
    assert opened.count() == 1

    client.force_login(clinician_a)  # within the grace
    assert client.get(frame, HTTP_X_LIGHTBOX_VIEWER_SESSION=held).status_code == 200
    own = ViewerSession.objects.exclude(key=held).get(study=ct_study)
    assert own.user == clinician_a and own.closed_at is None
    assert opened.count() == 2 and opened.latest("id").actor == clinician_a
    assert opened.latest("id").details["session"] == own.key
