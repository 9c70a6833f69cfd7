"""A server process renders at most ``LIGHTBOX_VIEWER_RENDERS_AT_ONCE`` frames at a time (found by
review: one 16000 x 16000 frame took ~1.5 GB at its peak, even as a 64 px thumbnail, and the viewer
asked for every series' thumbnail at once, so a few such frames together could exhaust the host).
A frame that finds every slot taken for a short wait answers 503 ``busy`` with ``Retry-After``,
not a 500, and nothing is recorded as a failure; a slot is given back however the render ends."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.viewer import services
from tests.factories import InstanceFactory, SeriesFactory, blob_alter

pytestmark = pytest.mark.django_db

AT_ONCE = 2


@pytest.fixture
def slots(settings, monkeypatch):
    settings.LIGHTBOX_VIEWER_RENDERS_AT_ONCE = AT_ONCE
    monkeypatch.setattr(services, "RENDER_WAIT_SECONDS", 0.05)  # the test does not wait 2 s per busy frame
    return services.render_slots()


def _frame_url(instance, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + ("?" + query if query else "")


def _all_free(slots) -> bool:
    """Every slot can be taken (and is given back): none was kept by a render that ended."""
    taken = [slots.acquire(blocking=False) for _ in range(AT_ONCE)]
    for ok in taken:
        if ok:
            slots.release()
    return all(taken)


def test_a_frame_is_busy_while_every_slot_is_taken_and_rendered_once_one_is_free(client_as, clinician_a, ct_study,
                                                                                 slots, caplog):
    client = client_as(clinician_a)
    instance = ct_study.phantom_instances[0]
    caplog.set_level(logging.INFO)
    for _ in range(AT_ONCE):
        assert slots.acquire(blocking=False)
    try:
        for quality, size in (("low", 64), ("preview", None), ("diagnostic", None)):
            response = client.get(_frame_url(instance, quality=quality, **({"size": size} if size else {})))
            assert response.status_code == 503
            assert response["Retry-After"] == "1"
            assert response["Cache-Control"] == "no-store"
            assert response["Content-Type"] == "application/json"
            body = response.json()
            assert body["error"] == "busy" and "busy" in body["message"]
        # Spanish for a reader who reads it (the message is translatable)
        assert client.get(_frame_url(instance), HTTP_ACCEPT_LANGUAGE="es").status_code == 503
    finally:
        slots.release()
    # not a failure: no server error logged, nothing recorded as failed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not AuditEvent.objects.filter(outcome="failed").exists()
    # one slot free again: the frame is rendered
    response = client.get(_frame_url(instance, quality="low", size=64))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    slots.release()
    assert _all_free(slots)


def test_a_frame_rendered_meanwhile_holds_a_slot_only_while_it_renders(client_as, clinician_a, ct_study, slots):
    """More frames one after the other than there are slots: each is rendered (none keeps its slot)."""
    client = client_as(clinician_a)
    for instance in ct_study.phantom_instances[: AT_ONCE + 2]:
        response = client.get(_frame_url(instance, quality="preview"))
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert _all_free(slots)


@pytest.mark.parametrize("failure", ["undecodable", "integrity", "unexpected"])
def test_a_render_that_fails_gives_its_slot_back(clinician_a, ct_study, slots, monkeypatch, failure):
    """A frame that cannot be decoded, whose stored file was altered, or whose render raised
    anything else: asked for more times than there are slots, each is answered as before (not
    "busy"), and every slot is free afterwards."""
    client = Client(raise_request_exception=False)
    client.force_login(clinician_a)
    if failure == "undecodable":
        series = SeriesFactory(organization=ct_study.organization, study=ct_study)
        instance = InstanceFactory(organization=ct_study.organization, series=series)  # a few bytes, not DICOM
    else:
        instance = ct_study.phantom_instances[1]
    if failure == "integrity":
        blob_alter(instance.blob)
    if failure == "unexpected":
        def broken(**kwargs):
            raise RuntimeError("a bug in rendering")
        monkeypatch.setattr(services, "frame_render", broken)
    expected = {"undecodable": (200, "undecodable"), "integrity": (200, "integrity"), "unexpected": (500, None)}
    for _ in range(AT_ONCE + 1):
        response = client.get(_frame_url(instance, quality="preview"))
        status, error = expected[failure]
        assert response.status_code == status
        if error:
            assert response.json()["error"] == error
    assert _all_free(slots)
    if failure != "unexpected":  # and another image of the study is still rendered
        other = client.get(_frame_url(ct_study.phantom_instances[2], quality="preview"))
        assert other.status_code == 200 and other["Content-Type"] == "image/jpeg"
