"""A rendition made before whose images added since have no file of it yet is "being made"
(``Progress.being_made``: its download answers 409 "Still being prepared, try again"). When the
task that was to make them gave up (``study_renditions_stopped``) or the queue lost it every time
(``_lost_give_up``), only PENDING renditions were marked "Not available": this one stayed "being
made", its download 409 for ever (found by review). It says now that it was not made and why, as a
PENDING one does; the renditions made whole are left as they are."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.renditions.models import Kind, Rendition, RenditionFile, RenditionRun, Status, renditions_progress
from apps.renditions.services import _lost_give_up, study_renditions_stopped
from tests.renditions.test_being_made_not_downloaded import _study_url

pytestmark = pytest.mark.django_db


def _image_added_since(study) -> None:
    """The preview lacks one image's file: an image added to the study since it was made."""
    RenditionFile.objects.filter(study=study, kind=Kind.PREVIEW).order_by("pk").last().delete()
    assert Rendition.objects.get(study=study, kind=Kind.PREVIEW).status != Status.PENDING
    assert renditions_progress([study.pk], Kind.PREVIEW)[study.pk].being_made


def _assert_given_up(study, client, why: str) -> None:
    preview = Rendition.objects.get(study=study, kind=Kind.PREVIEW)
    assert preview.status == Status.UNAVAILABLE and why in preview.reason_shown
    assert not renditions_progress([study.pk], Kind.PREVIEW)[study.pk].being_made
    response = client.get(_study_url(study, Kind.PREVIEW))
    assert response.status_code == 404 and 'data-testid="rendition-not-available"' in response.content.decode()
    # the renditions made whole are still there
    for kind in (Kind.LOSSLESS, Kind.EDUCATION):
        assert Rendition.objects.get(study=study, kind=kind).status == Status.READY
        assert client.get(_study_url(study, kind)).status_code == 200


def test_a_task_that_gave_up_leaves_no_rendition_being_made_for_ever(ct_study, clinician_a, client_as):
    client = client_as(clinician_a)
    _image_added_since(ct_study)
    assert client.get(_study_url(ct_study, Kind.PREVIEW)).status_code == 409
    assert study_renditions_stopped(study_id=ct_study.pk) == 1
    _assert_given_up(ct_study, client, "the work stopped on an error")


def test_a_task_the_queue_lost_every_time_leaves_no_rendition_being_made_for_ever(ct_study, clinician_a, client_as):
    client = client_as(clinician_a)
    _image_added_since(ct_study)
    RenditionRun.objects.update_or_create(study=ct_study, defaults={"queued_at": timezone.now(), "started_at": None})
    assert _lost_give_up(RenditionRun.objects.filter(study=ct_study), ct_study.pk)
    _assert_given_up(ct_study, client, "work queue lost the task")
