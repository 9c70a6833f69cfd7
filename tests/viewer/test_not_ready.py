"""A study that is not ready is not opened in the viewer (found by review).

A study an ingest is still adding images to (receiving, processing) or whose ingest failed part way
opened in the viewer labelled "diagnostic", its frames ``X-Lightbox-Frame: diagnostic``, with
nothing saying images may be missing, while its downloads were refused as not ready; the study page
offered "View" for it. Its page is now a 409 saying why (images still arriving, or the ingest
failed) with the way back, its frames and series answer 409 ``not_ready`` and nothing is recorded
as viewed; "View" is offered for ready studies (ready with warnings too), as the case page does.
Outsiders still get 404, never the study's state."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.imaging.models import Instance, JobState, Series, Study, StudyState
from apps.organizations.models import Role
from tests.factories import IngestJobFactory, member

pytestmark = pytest.mark.django_db

NOT_READY = [StudyState.RECEIVING, StudyState.PROCESSING, StudyState.FAILED]


def _urls(study):
    instance = Instance.objects.filter(study=study).order_by("instance_number").first()
    series = Series.objects.filter(study=study).first()
    return (reverse("viewer:viewer", kwargs={"study_id": study.public_id}),
            reverse("viewer:frame", kwargs={"instance_id": instance.public_id}),
            reverse("viewer:series_instances", kwargs={"study_id": study.public_id, "series_id": series.public_id}))


def _viewed(study) -> int:
    return AuditEvent.objects.filter(action__startswith="viewer.", study_ref=study.public_id).count()


@pytest.mark.parametrize("state", NOT_READY)
def test_a_study_not_ready_is_not_opened(client_as, clinician_a, ct_study, state):
    Study.objects.filter(pk=ct_study.pk).update(state=state)
    page_url, frame_url, series_url = _urls(ct_study)
    c = client_as(clinician_a)
    page = c.get(page_url)
    assert page.status_code == 409
    assert "viewer/not_ready.html" in [t.name for t in page.templates]
    assert "viewer_data" not in page.context and 'id="viewer-data"' not in page.content.decode()
    body = page.content.decode()
    heading = "Ingest failed" if state == StudyState.FAILED else "Images still arriving"
    assert f"<h1>{heading}</h1>" in body
    assert f'href="{ct_study.get_absolute_url()}" data-testid="way-back"' in body
    for quality in ("diagnostic", "low"):
        frame = c.get(frame_url, {"quality": quality})
        assert frame.status_code == 409 and frame.json()["error"] == "not_ready"
        assert "X-Lightbox-Frame" not in frame
    series = c.get(series_url)
    assert series.status_code == 409 and series.json()["error"] == "not_ready"
    assert _viewed(ct_study) == 0  # nothing recorded as viewed: no viewer session was opened
    detail = c.get(ct_study.get_absolute_url())
    assert detail.status_code == 200 and b'data-testid="open-viewer"' not in detail.content


@pytest.mark.parametrize("state", [StudyState.READY, StudyState.READY_WITH_WARNINGS])
def test_a_ready_study_opens(client_as, clinician_a, ct_study, state):
    Study.objects.filter(pk=ct_study.pk).update(state=state)
    page_url, frame_url, series_url = _urls(ct_study)
    c = client_as(clinician_a)
    page = c.get(page_url)
    assert page.status_code == 200 and page.context["diagnostic"] is True
    frame = c.get(frame_url, {"quality": "diagnostic"})
    assert frame.status_code == 200 and frame["X-Lightbox-Frame"] == "diagnostic"
    assert c.get(series_url).status_code == 200
    assert b'data-testid="open-viewer"' in c.get(ct_study.get_absolute_url()).content


def test_an_outsider_learns_nothing_of_the_state(client_as, org_b, ct_study):
    Study.objects.filter(pk=ct_study.pk).update(state=StudyState.PROCESSING)
    page_url, frame_url, series_url = _urls(ct_study)
    c = client_as(member(org_b, Role.CLINICIAN, email="outsider@beta.example"))
    assert c.get(page_url).status_code == 404
    assert c.get(frame_url).status_code == 404
    assert c.get(series_url).status_code == 404


def test_a_preview_recipient_is_told_too(client_as, ct_study, preview_recipient):
    Study.objects.filter(pk=ct_study.pk).update(state=StudyState.RECEIVING)
    page_url, frame_url, _series_url = _urls(ct_study)
    c = client_as(preview_recipient)
    assert c.get(page_url).status_code == 409
    frame = c.get(frame_url, {"quality": "low"})
    assert frame.status_code == 409 and frame.json()["error"] == "not_ready"
    assert _viewed(ct_study) == 0


def test_a_failed_ingest_says_why_to_the_uploaders_only(client_as, org_a, clinician_a, ct_study, preview_recipient):
    job = IngestJobFactory(organization=org_a, state=JobState.FAILED, error="StorageUnavailable")
    Study.objects.filter(pk=ct_study.pk).update(state=StudyState.FAILED, created_by_job=job)
    page_url, _frame_url, _series_url = _urls(ct_study)
    staff = client_as(clinician_a).get(page_url)
    assert staff.status_code == 409
    failure = job.failure.message
    assert "storage did not answer" in failure
    assert 'data-testid="viewer-not-ready-failure"' in staff.content.decode()
    assert str(job.public_id) in staff.content.decode()
    outsider = client_as(preview_recipient).get(page_url)
    assert outsider.status_code == 409 and b"<h1>Ingest failed</h1>" in outsider.content
    assert b'data-testid="viewer-not-ready-failure"' not in outsider.content
    assert str(job.public_id).encode() not in outsider.content
