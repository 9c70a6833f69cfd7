"""The viewer claims no quality for what it has no image of: an object without an image (an RT
plan, a report, an ECG) is listed as such (``image: false``, nothing asked for), and the page
carries the plain message and the Mode it then shows ("No image to show", not "Diagnostic
quality available"); a frame that cannot be decoded says why in words.
(viewer.js's side: tests/browser/test_viewer_no_image.py.)"""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from tests.viewer.no_image import store_mixed_series, store_report, store_rt_plan, store_short_ct

pytestmark = pytest.mark.django_db


def _page(client, study):
    response = client.get(reverse("viewer:viewer", kwargs={"study_id": study.public_id}))
    body = response.content.decode()
    data = json.loads(re.search(r'<script id="viewer-data" type="application/json">(.*?)</script>', body,
                                re.S).group(1))
    return body, data


def test_an_object_without_an_image_is_listed_as_such(client_as, clinician_a, ct_study):
    plan = store_rt_plan(ct_study, number=0)
    body, data = _page(client_as(clinician_a), ct_study)
    first, second = data["series"]
    assert first["modality"] == "RTPLAN"
    assert first["instances"] == [{"id": str(plan.public_id), "frames": 1, "number": 1, "rows": None,
                                   "columns": None, "image": False}]
    picked = client_as(clinician_a).get(reverse("viewer:series_instances", kwargs={
        "study_id": ct_study.public_id, "series_id": second["id"]})).json()["instances"]
    assert all(item["image"] is True for item in picked) and len(picked) == 20
    assert 'data-msg-no-image="There is no image to show: this object holds no image' in body
    assert re.search(r'id="meta-mode" data-testid="meta-mode" data-none="No image to show"[^>]*>', body)


def test_a_frame_of_an_object_without_an_image_says_so(client_as, clinician_a, ct_study):
    plan = store_rt_plan(ct_study, number=0)
    response = client_as(clinician_a).get(reverse("viewer:frame", kwargs={"instance_id": plan.public_id}),
                                          {"quality": "diagnostic"})
    assert response.status_code == 200 and response["X-Lightbox-Frame"] == "undecodable"
    assert response.json()["reason"] == "The file holds no pixel data."
    assert "no-store" in response["Cache-Control"]  # as every frame's answer: nothing kept on disk


def test_a_frame_shorter_than_its_header_says_why(client_as, clinician_a, ct_study):
    short = store_short_ct(ct_study)
    response = client_as(clinician_a).get(reverse("viewer:frame", kwargs={"instance_id": short.public_id}),
                                          {"quality": "diagnostic"})
    assert response["X-Lightbox-Frame"] == "undecodable"
    assert response.json()["reason"] == "The image data in this file is shorter than its header says: it cannot " \
                                        "be shown."
    assert "Error" not in response.content.decode()


def test_a_series_with_no_image_has_no_thumbnail_to_ask_for_but_its_kind(client_as, clinician_a, ct_study):
    store_rt_plan(ct_study, number=0)
    store_report(ct_study, number=3)
    mixed = store_mixed_series(ct_study, number=4)  # image, no image, not decodable, image
    _, data = _page(client_as(clinician_a), ct_study)
    plan, ct, report, mixed_series = data["series"]
    assert (plan["thumbnail"], plan["kind"]) == ("", "Treatment plan")
    assert (report["thumbnail"], report["kind"]) == ("", "Report")
    assert ct["thumbnail"] and ct["kind"] == ""
    # the middle one of the objects with an image, never the one without
    assert mixed_series["thumbnail"] == str(mixed[2].public_id) and mixed_series["kind"] == ""

