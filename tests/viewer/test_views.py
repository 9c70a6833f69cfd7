"""The viewer page, the frame endpoint and the close beacon: policy on every frame, renditions
that follow permissions, labels that follow the pixels, caching headers, audit once per session."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from apps.audit.models import AuditEvent
from bench.frames_synthetic import body_hu
from tests.factories import InstanceFactory, SeriesFactory, open_anonymous_link

pytestmark = pytest.mark.django_db


def _frame_url(instance, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + ("?" + query if query else "")


def _series_url(study, series, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    url = reverse("viewer:series_instances", kwargs={"study_id": study.public_id, "series_id": series.public_id})
    return url + ("?" + query if query else "")


def _gray(value_hu: float, center: float, width: float) -> float:
    low = center - 0.5 - (width - 1) / 2
    return float(np.clip((value_hu - low) / (width - 1) * 255, 0, 255))


def _centre(response) -> float:
    image = np.asarray(Image.open(io.BytesIO(response.content)).convert("L"), dtype=np.float32)
    h, w = image.shape
    return float(image[h // 2 - 2:h // 2 + 3, w // 2 - 2:w // 2 + 3].mean())


def test_page_lists_series_and_records_one_open(client_as, clinician_a, ct_study):
    response = client_as(clinician_a).get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="viewer-data"' in body and str(ct_study.phantom_instances[0].public_id) in body
    assert "Diagnostic quality available" in body
    assert 'src="/static/js/viewer.js"' in body and "<script>" not in body  # CSP: no inline script
    events = AuditEvent.objects.filter(action="viewer.opened", study_ref=ct_study.public_id)
    assert events.count() == 1 and events.get().details["mode"] == "diagnostic"
    assert not AuditEvent.objects.filter(action="viewer.opened").exclude(study_ref=ct_study.public_id).exists()


def test_diagnostic_frame_is_lossless_png_at_the_asked_window(client_as, clinician_a, ct_study):
    client = client_as(clinician_a)
    instance = ct_study.phantom_instances[12]
    default = client.get(_frame_url(instance, quality="diagnostic"))
    assert default.status_code == 200 and default["Content-Type"] == "image/png"
    assert default["X-Lightbox-Frame"] == "diagnostic"
    assert default["X-Lightbox-Window"] == "40/400"  # from the file
    assert Image.open(io.BytesIO(default.content)).size == (128, 128)
    assert abs(_centre(default) - _gray(body_hu(12), 40, 400)) <= 1
    lung = client.get(_frame_url(instance, quality="diagnostic", center=-600, width=1500))
    assert abs(_centre(lung) - _gray(body_hu(12), -600, 1500)) <= 1
    assert abs(_centre(lung) - _centre(default)) > 50
    other_slice = client.get(_frame_url(ct_study.phantom_instances[2], quality="diagnostic"))
    assert abs(_centre(other_slice) - _gray(body_hu(2), 40, 400)) <= 1


def test_a_reduced_diagnostic_frame_is_not_labelled_diagnostic(client_as, clinician_a, ct_study):
    """``size`` shrinks a diagnostic frame too: a PNG of fewer pixels than the original is not the
    diagnostic original, and its label (what the viewer shows under it) must not say so."""
    client = client_as(clinician_a)
    instance = ct_study.phantom_instances[12]
    reduced = client.get(_frame_url(instance, quality="diagnostic", size=64))
    assert reduced.status_code == 200 and Image.open(io.BytesIO(reduced.content)).size == (64, 64)
    assert reduced["X-Lightbox-Frame"] == "preview"
    assert reduced["X-Lightbox-Size"] == "128x128"  # the original's size, as before
    full = client.get(_frame_url(instance, quality="diagnostic", size=128))
    assert full["X-Lightbox-Frame"] == "diagnostic"


def _not_stored(response) -> bool:
    """Kept by no cache, the browser's disk cache included: ``no-store``, and not only revalidated."""
    directives = {d.strip() for d in response["Cache-Control"].lower().split(",")}
    return "no-store" in directives and "public" not in directives


def test_frames_carry_an_etag_and_are_not_stored(client_as, clinician_a, ct_study):
    """A frame (the patient's image) is never stored by the browser: it stayed in the disk cache
    of a shared workstation after access ended (a revoked share, a session ended by closing the
    browser, an anonymous link), where only an explicit sign-out cleared it. viewer.js keeps
    frames in memory instead (tests/browser/test_viewer_frames_in_memory.py)."""
    client = client_as(clinician_a)
    url = _frame_url(ct_study.phantom_instances[0], quality="preview", size=64)
    first = client.get(url)
    assert first["Content-Type"] == "image/jpeg" and first["X-Lightbox-Frame"] == "preview"
    assert max(Image.open(io.BytesIO(first.content)).size) == 64
    assert _not_stored(first) and first["ETag"].startswith('"')
    again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again["ETag"] == first["ETag"] and _not_stored(again)
    # GZipMiddleware weakens the ETag of responses it compresses: browsers then send W/"..."
    weak = client.get(url, HTTP_IF_NONE_MATCH="W/" + first["ETag"])
    assert weak.status_code == 304 and _not_stored(weak)
    for quality in ("low", "preview", "diagnostic"):
        shown = client.get(_frame_url(ct_study.phantom_instances[1], quality=quality))
        assert shown.status_code == 200 and shown["Content-Type"].startswith("image/"), quality
        assert _not_stored(shown), (quality, shown["Cache-Control"])
        revisit = client.get(_frame_url(ct_study.phantom_instances[1], quality=quality),
                             HTTP_IF_NONE_MATCH=shown["ETag"])
        assert revisit.status_code == 304 and _not_stored(revisit), quality
    other = client.get(_frame_url(ct_study.phantom_instances[0], quality="preview", size=64, center=0, width=100))
    assert other["ETag"] != first["ETag"]
    low = client.get(_frame_url(ct_study.phantom_instances[0], quality="low"))
    assert low["Content-Type"] == "image/jpeg" and max(Image.open(io.BytesIO(low.content)).size) <= 256


def test_preview_only_recipient_gets_lossy_previews_and_no_diagnostic_frames(client_as, preview_recipient, ct_study):
    client = client_as(preview_recipient)
    page = client.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    assert page.status_code == 200 and "Previews only" in page.content.decode()
    instance = ct_study.phantom_instances[3]
    preview = client.get(_frame_url(instance, quality="preview"))
    assert preview.status_code == 200 and preview["Content-Type"] == "image/jpeg"
    assert preview["X-Lightbox-Frame"] == "preview"
    refused = client.get(_frame_url(instance, quality="diagnostic"))
    assert refused.status_code == 403 and refused.json()["error"] == "preview_only"
    assert AuditEvent.objects.filter(action="access.denied", details__wanted="download_original").exists()


def test_revoked_grant_stops_the_next_frame(client_as, clinician_a, preview_recipient, ct_study):
    from apps.sharing import services

    client = client_as(preview_recipient)
    url = _frame_url(ct_study.phantom_instances[0], quality="preview")
    assert client.get(url).status_code == 200
    services.grants_revoke(grants=[preview_recipient.grant], by=clinician_a, reason="test")
    stopped = client.get(url)
    assert stopped.status_code in (403, 404) and stopped.json()["message"]
    assert client.get(url, HTTP_IF_NONE_MATCH="whatever").status_code in (403, 404)


def test_outsiders_get_404_and_anonymous_is_sent_to_sign_in(client_as, admin_b, ct_study, client):
    page = reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id})
    assert client_as(admin_b).get(page).status_code == 404
    assert client_as(admin_b).get(_frame_url(ct_study.phantom_instances[0])).status_code == 404
    assert client.get(page).status_code == 302
    assert client.get(_frame_url(ct_study.phantom_instances[0])).status_code == 404


def test_close_is_recorded_once_per_session(client_as, clinician_a, ct_study):
    client = client_as(clinician_a)
    client.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    session = AuditEvent.objects.get(action="viewer.opened").details["session"]
    close = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert client.post(close, {"session": session, "frames": "7"}).status_code == 204
    assert client.post(close, {"session": session, "frames": "7"}).status_code == 204
    closed = AuditEvent.objects.filter(action="viewer.closed", study_ref=ct_study.public_id)
    assert closed.count() == 1 and closed.get().details["frames"] == 7
    assert AuditEvent.objects.filter(action="viewer.opened").count() == 1  # frames are not audited


def test_lossy_file_is_never_labelled_diagnostic(client_as, clinician_a, ct_study):
    from apps.imaging.blobs import put_blob
    from bench.frames_synthetic import ct_phantom_slice

    ds = ct_phantom_slice(0, rows=32, columns=32)
    ds.LossyImageCompression = "01"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    blob = put_blob(buffer, organization=ct_study.organization)
    series = SeriesFactory(organization=ct_study.organization, study=ct_study)
    instance = InstanceFactory(organization=ct_study.organization, series=series, blob=blob)
    response = client_as(clinician_a).get(_frame_url(instance, quality="diagnostic"))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Lightbox-Frame"] == "lossy"


def test_undecodable_file_gives_a_message_not_a_500(client_as, clinician_a, ct_study):
    series = SeriesFactory(organization=ct_study.organization, study=ct_study)
    instance = InstanceFactory(organization=ct_study.organization, series=series)  # a few bytes, not DICOM
    response = client_as(clinician_a).get(_frame_url(instance, quality="diagnostic"))
    assert response.status_code == 200 and response["X-Lightbox-Frame"] == "undecodable"
    assert response.json()["error"] == "undecodable" and response.json()["reason"]


def test_why_a_frame_cannot_be_shown_is_in_the_readers_language(client_as, clinician_a, ct_study):
    """The pixel module's reasons are also stored by renditions (in English): the viewer
    translates them for its reader."""
    response = client_as(clinician_a).get(_frame_url(ct_study.phantom_instances[0], frame=3),
                                          HTTP_ACCEPT_LANGUAGE="es")
    assert response.json()["reason"] == "No existe ese fotograma."
    response = client_as(clinician_a).get(_frame_url(ct_study.phantom_instances[0], frame=3),
                                          HTTP_ACCEPT_LANGUAGE="en")
    assert response.json()["reason"] == "No such frame."


@pytest.mark.parametrize("query", ["frame=-1", "frame=x", "quality=raw", "center=10", "size=99999", "width=0&center=1",
                                   "format=gif"])
def test_bad_frame_requests_are_400(client_as, clinician_a, ct_study, query):
    url = reverse("viewer:frame", kwargs={"instance_id": ct_study.phantom_instances[0].public_id}) + "?" + query
    assert client_as(clinician_a).get(url).status_code == 400


def test_frame_out_of_range_is_a_message(client_as, clinician_a, ct_study):
    response = client_as(clinician_a).get(_frame_url(ct_study.phantom_instances[0], frame=3))
    assert response.status_code == 200 and response.json()["error"] == "undecodable"


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_encode_png_is_lossless(mode):
    from apps.viewer.services import encode_png

    rng = np.random.default_rng(1)
    shape = (37, 53) if mode == "L" else (37, 53, 3)
    image = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=None)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.mode == mode and np.array_equal(np.asarray(decoded), np.asarray(image))


def test_study_page_links_to_the_viewer_only_for_those_who_may_view(client_as, clinician_a, admin_a, ct_study):
    study_page = reverse("imaging:study_detail", kwargs={"study_id": ct_study.public_id})
    viewer = reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id})
    assert viewer in client_as(clinician_a).get(study_page).content.decode()
    as_admin = client_as(admin_a).get(study_page)  # org admins see case status, not pixels
    assert as_admin.status_code == 200 and viewer not in as_admin.content.decode()
    assert client_as(admin_a).get(viewer).status_code == 403


def test_multi_frame_instance_serves_each_frame(client_as, clinician_a, ct_study):
    from pydicom.data import get_testdata_file

    from apps.imaging.blobs import put_blob

    path = get_testdata_file("emri_small.dcm", download=False)  # 10 frames, 64x64 MR
    if path is None:
        pytest.skip("emri_small.dcm not present")
    with open(path, "rb") as fh:
        blob = put_blob(fh, organization=ct_study.organization)
    series = SeriesFactory(organization=ct_study.organization, study=ct_study)
    instance = InstanceFactory(organization=ct_study.organization, series=series, blob=blob, frames=10, rows=64,
                               columns=64)  # as ingest reads them from its header
    client = client_as(clinician_a)
    first, last = (client.get(_frame_url(instance, quality="diagnostic", frame=i)) for i in (0, 9))
    assert first["Content-Type"] == last["Content-Type"] == "image/png"
    assert first.content != last.content  # different frames, different pixels
    assert client.get(_frame_url(instance, frame=10)).json()["error"] == "undecodable"
    page = client.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    assert f'"count": 1, "frames": 10, "thumbnail": "{instance.public_id}"' in page.content.decode()
    listed = client.get(_series_url(ct_study, series)).json()["instances"]
    assert [(i["id"], i["frames"]) for i in listed] == [(str(instance.public_id), 10)]


def test_frames_fetched_without_the_viewer_page_are_recorded_once_per_study(client_as, clinician_a, ct_study):
    """Frames are audited through the viewer session; a client that asks for frames without
    opening the page (a script, a bookmarked frame URL) opens one, recorded as viewer.opened once
    for the study in that browser session, then its frames keep it alive like the page's."""
    client = client_as(clinician_a)
    for instance in ct_study.phantom_instances[:3]:
        assert client.get(_frame_url(instance, quality="diagnostic")).status_code == 200
    opened = AuditEvent.objects.filter(action="viewer.opened", study_ref=ct_study.public_id)
    assert opened.count() == 1
    event = opened.get()
    assert event.actor == clinician_a and event.organization_id == ct_study.organization_id
    assert event.details["mode"] == "diagnostic" and event.details["via"] == "frame"
    # the page opened afterwards is a session of its own; its frames add nothing
    client.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    session = AuditEvent.objects.filter(action="viewer.opened").latest("id").details["session"]
    client.get(_frame_url(ct_study.phantom_instances[4]), HTTP_X_LIGHTBOX_VIEWER_SESSION=session)
    assert opened.count() == 2


def test_frames_after_the_idle_sweep_closed_the_session_open_a_recorded_one(client_as, clinician_a, ct_study):
    """A reader leaves the viewer idle past the limit (the sweep records viewer.closed), then
    comes back and reads on with the page's old session key: that reading is recorded again
    (one new viewer.opened), not added silently to the closed session."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.viewer.models import ViewerSession
    from apps.viewer.sessions import viewer_sessions_close_idle

    client = client_as(clinician_a)
    client.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    opened = AuditEvent.objects.filter(action="viewer.opened", study_ref=ct_study.public_id)
    old_key = opened.get().details["session"]
    ViewerSession.objects.filter(key=old_key).update(last_seen_at=timezone.now() - timedelta(days=1))
    assert viewer_sessions_close_idle() == 1
    for instance in ct_study.phantom_instances[:3]:
        response = client.get(_frame_url(instance), HTTP_X_LIGHTBOX_VIEWER_SESSION=old_key)
        assert response.status_code == 200
    assert opened.count() == 2
    new_key = opened.latest("id").details["session"]
    assert new_key != old_key
    assert ViewerSession.objects.get(key=new_key).closed_at is None
    assert ViewerSession.objects.get(key=old_key).close_reason == "timeout"


def test_frames_in_flight_as_the_page_is_left_belong_to_the_session_it_closed(client_as, clinician_a, ct_study):
    """The page's beacon closes its session as it is left, while frames it asked for (prefetch)
    may still arrive: those open no new session. Sent later with the same key (a reader back at
    the tab), reading is recorded again, as after the idle sweep."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.viewer.models import ViewerSession
    from apps.viewer.sessions import LATE_FRAME_GRACE

    client = client_as(clinician_a)
    client.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    opened = AuditEvent.objects.filter(action="viewer.opened", study_ref=ct_study.public_id)
    key = opened.get().details["session"]
    close = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert client.post(close, {"session": key}).status_code in (200, 204)
    assert ViewerSession.objects.get(key=key).close_reason == "closed"
    for instance in ct_study.phantom_instances[:3]:
        assert client.get(_frame_url(instance), HTTP_X_LIGHTBOX_VIEWER_SESSION=key).status_code == 200
    assert opened.count() == 1
    ViewerSession.objects.filter(key=key).update(closed_at=timezone.now() - LATE_FRAME_GRACE - timedelta(seconds=1))
    assert client.get(_frame_url(ct_study.phantom_instances[3]), HTTP_X_LIGHTBOX_VIEWER_SESSION=key).status_code == 200
    assert opened.count() == 2


# ---------------------------------------------------------------- a series' instances, asked for when picked

@pytest.fixture
def second_series(ct_study):
    """A second series of the phantom study: 3 instances, numbered backwards from their creation."""
    series = SeriesFactory(organization=ct_study.organization, study=ct_study, series_number=2, modality="CT",
                           series_description="Second")
    series.made = [InstanceFactory(organization=ct_study.organization, series=series, instance_number=n, rows=64,
                                   columns=64) for n in (3, 2, 1)]
    return series


def _viewer_data(response) -> dict:
    import json
    import re

    match = re.search(r'<script id="viewer-data" type="application/json">(.*?)</script>', response.content.decode(),
                      re.S)
    return json.loads(match.group(1))


def test_page_embeds_the_series_list_and_the_first_series_instances_only(client_as, clinician_a, ct_study,
                                                                          second_series):
    response = client_as(clinician_a).get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    data = _viewer_data(response)
    first, second = data["series"]
    assert [i["id"] for i in first["instances"]] == [str(i.public_id) for i in ct_study.phantom_instances]
    assert first["next"] is None and (first["count"], first["frames"]) == (20, 20)
    assert first["thumbnail"] == str(ct_study.phantom_instances[10].public_id)  # the middle one
    assert "instances" not in second and (second["count"], second["frames"]) == (3, 3)
    assert (second["id"], second["number"], second["modality"], second["description"]) == (
        str(second_series.public_id), 2, "CT", "Second")
    assert second["thumbnail"] == str(second_series.made[1].public_id)  # number 2 of 1, 2, 3
    body = response.content.decode()
    assert not any(str(i.public_id) in body for i in second_series.made[::2])  # not the thumbnail's neighbours
    opened = AuditEvent.objects.get(action="viewer.opened", study_ref=ct_study.public_id)
    assert (opened.details["series"], opened.details["instances"]) == (2, 23)


def test_series_instances_for_the_owner_in_the_viewers_order_and_not_audited(client_as, clinician_a, ct_study,
                                                                              second_series):
    client = client_as(clinician_a)
    response = client.get(_series_url(ct_study, second_series))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["next"] is None
    assert body["instances"] == [{"id": str(i.public_id), "frames": 1, "number": i.instance_number, "rows": 64,
                                  "columns": 64, "image": True} for i in reversed(second_series.made)]
    assert not AuditEvent.objects.filter(action__startswith="viewer.").exists()  # the page records the session


def test_series_instances_for_a_link_holder_and_a_preview_only_recipient(client, client_as, clinician_a, ct_study,
                                                                         second_series, preview_recipient):
    from apps.sharing import services as sharing
    from apps.sharing.usecases import RecipientKind, UseCase

    ct_study.organization.anonymous_links_enabled = True
    ct_study.organization.save()
    _grant, _link, raw = sharing.share_create(case=ct_study.case, by=clinician_a, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS)
    assert open_anonymous_link(client, raw).status_code == 302
    for holder in (client, client_as(preview_recipient)):
        response = holder.get(_series_url(ct_study, second_series))
        assert response.status_code == 200 and len(response.json()["instances"]) == 3


def test_series_instances_are_404_to_outsiders_and_to_anonymous(client, client_as, admin_b, ct_study, second_series):
    for outsider in (client_as(admin_b), client):
        response = outsider.get(_series_url(ct_study, second_series))
        assert response.status_code == 404 and response.json()["error"] == "gone"
        assert str(second_series.made[0].public_id) not in response.content.decode()
    assert AuditEvent.objects.filter(action="access.denied").exists()


@pytest.mark.parametrize("ending", ["revoked", "expired"])
def test_series_instances_stop_once_the_grant_has_ended(client_as, clinician_a, ct_study, second_series,
                                                         preview_recipient, ending):
    """As a frame: the recipient no longer sees the case, so the answer is the JSON 404 of a study
    no longer available (viewer.js stops with its message), the same as for any outsider."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.sharing import services
    from apps.sharing.models import Grant

    client = client_as(preview_recipient)
    assert client.get(_series_url(ct_study, second_series)).status_code == 200
    if ending == "revoked":
        services.grants_revoke(grants=[preview_recipient.grant], by=clinician_a, reason="test")
    else:
        Grant.objects.filter(pk=preview_recipient.grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    stopped = client.get(_series_url(ct_study, second_series))
    assert stopped.status_code == 404 and stopped.json()["error"] == "gone" and stopped.json()["message"]
    assert "instances" not in stopped.json() and "no-store" in stopped["Cache-Control"]


def test_series_instances_are_403_json_to_staff_without_view_images(client_as, admin_a, ct_study, second_series):
    """An organization's admin sees a case's status, not its pixels (the page is 403 to them too)."""
    response = client_as(admin_a).get(_series_url(ct_study, second_series))
    assert response.status_code == 403 and response.json()["error"] == "denied"


def test_a_series_of_another_study_or_organization_is_404(client_as, clinician_a, org_b, ct_study, second_series):
    from tests.factories import StudyFactory

    other_study = StudyFactory(organization=ct_study.organization, case=ct_study.case)
    other_org_series = SeriesFactory(organization=org_b)
    InstanceFactory(organization=org_b, series=other_org_series)
    client = client_as(clinician_a)
    for study, series in ((other_study, second_series), (ct_study, other_org_series)):
        response = client.get(_series_url(study, series))
        assert response.status_code == 404 and "instances" not in response.json()
    # the other organization's study, named with its own series, is hidden as a whole
    assert client.get(_series_url(other_org_series.study, other_org_series)).status_code == 404


def test_a_long_series_comes_a_page_at_a_time(client_as, clinician_a, ct_study, monkeypatch):
    from apps.viewer import selectors

    monkeypatch.setattr(selectors, "SERIES_PAGE", 8)
    client = client_as(clinician_a)
    series = ct_study.phantom_instances[0].series
    data = _viewer_data(client.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id})))
    assert len(data["series"][0]["instances"]) == 8 and data["series"][0]["next"] == 8
    assert data["series"][0]["frames"] == 20  # the slider's length before the rest is listed
    listed, start = list(data["series"][0]["instances"]), 8
    while start is not None:
        body = client.get(_series_url(ct_study, series, start=start)).json()
        listed += body["instances"]
        start = body["next"]
    assert [i["id"] for i in listed] == [str(i.public_id) for i in ct_study.phantom_instances]
    assert client.get(_series_url(ct_study, series, start=500)).json() == {"instances": [], "next": None}


@pytest.mark.parametrize("start", ["-1", "x", "1.5", "99999999999"])
def test_bad_series_page_requests_are_400(client_as, clinician_a, ct_study, second_series, start):
    response = client_as(clinician_a).get(_series_url(ct_study, second_series, start=start))
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


def test_the_viewer_leads_back_to_the_study_or_for_a_link_holder_to_the_shared_case(client, client_as, clinician_a,
                                                                                    ct_study):
    """A link holder has no study page (it sends them to the sign-in form): their way back is the
    shared case the link opened."""
    from apps.sharing import services as sharing
    from apps.sharing.usecases import RecipientKind, UseCase

    url = reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id})
    page = client_as(clinician_a).get(url).content.decode()
    assert f'href="{ct_study.get_absolute_url()}" data-testid="viewer-back">Back to study<' in page
    ct_study.organization.anonymous_links_enabled = True
    ct_study.organization.save()
    _grant, _link, raw = sharing.share_create(case=ct_study.case, by=clinician_a, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS)
    assert open_anonymous_link(client, raw).status_code == 302
    page = client.get(url).content.decode()
    back = reverse("sharing:shared_case", kwargs={"case_id": ct_study.case.public_id})
    assert f'href="{back}" data-testid="viewer-back">Back to the shared case<' in page
    assert client.get(back).status_code == 200
