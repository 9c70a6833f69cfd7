"""Signing out closes the viewer sessions that browser session opened (found by QA): the page's
close beacon comes after the sign-out, from a browser already signed out, so the session stayed
open until the idle sweep closed it ("timeout") and the trail overstated the viewing time. Now
the sign-out closes them at that moment, reason "signed_out", as the page's close does
(viewer.closed); the same person's viewer on another device stays open."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from apps.accounts.middleware import LAST_SEEN
from apps.audit.models import AuditEvent
from apps.viewer.models import ViewerSession
from apps.viewer.tasks import viewer_sessions_close_idle_task

pytestmark = pytest.mark.django_db


def _open(client, study) -> str:
    assert client.get(reverse("viewer:viewer", kwargs={"study_id": study.public_id})).status_code == 200
    return AuditEvent.objects.filter(action="viewer.opened").latest("id").details["session"]


def _closed(key: str):
    return AuditEvent.objects.filter(action="viewer.closed", details__session=key)


def test_signing_out_closes_this_browsers_viewers_not_another_devices(client_as, clinician_a, ct_study):
    here, elsewhere = client_as(clinician_a), client_as(clinician_a)
    tabs = [_open(here, ct_study), _open(here, ct_study)]
    other_device = _open(elsewhere, ct_study)

    assert here.post(reverse("account_logout")).status_code == 302
    assert "_auth_user_id" not in here.session

    for key in tabs:
        viewer_session = ViewerSession.objects.get(key=key)
        assert viewer_session.closed_at is not None and viewer_session.close_reason == "signed_out"
        event = _closed(key).get()
        assert event.details["reason"] == "signed_out" and event.details["seconds"] >= 0
        assert event.actor == clinician_a and event.organization_id == ct_study.organization_id
        assert event.study_ref == ct_study.public_id and event.outcome == "allowed"
    # recorded as part of the sign-out
    signed_out = AuditEvent.objects.get(action="auth.signed_out")
    assert signed_out.actor == clinician_a
    # the page's beacon, after the sign-out, adds nothing; nor does the sweep later
    here.post(reverse("viewer:close", kwargs={"study_id": ct_study.public_id}), {"session": tabs[0], "frames": "3"})
    assert _closed(tabs[0]).count() == 1 and ViewerSession.objects.get(key=tabs[0]).close_reason == "signed_out"

    # the same person's viewer on another device: still open, still kept alive and closed by its page
    assert ViewerSession.objects.get(key=other_device).closed_at is None
    assert not _closed(other_device).exists()
    heartbeat = reverse("viewer:heartbeat", kwargs={"study_id": ct_study.public_id})
    assert elsewhere.post(heartbeat, {"session": other_device}).status_code == 204
    close = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert elsewhere.post(close, {"session": other_device}).status_code == 204
    assert _closed(other_device).get().details["reason"] == "closed"
    assert viewer_sessions_close_idle_task() == 0


def test_the_idle_sign_out_closes_the_viewer_too(client_as, clinician_a, ct_study):
    client = client_as(clinician_a)
    key = _open(client, ct_study)
    session = client.session
    session[LAST_SEEN] = time.time() - 24 * 3600  # past any idle limit
    session.save()
    client.get(reverse("cases:case_list"))
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.idle_timeout", actor=clinician_a).exists()
    assert ViewerSession.objects.get(key=key).close_reason == "signed_out"
    assert _closed(key).get().details["reason"] == "signed_out"
