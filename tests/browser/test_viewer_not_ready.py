"""An open viewer whose study goes back to processing (more images arriving for it) stops at its
next frame, saying why, and keeps its way back to the study: its frames answer 409 ``not_ready``
(apps.viewer.views), which viewer.js took for a network failure ("Check your connection")."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.imaging.models import Study, StudyState
from tests.browser.conftest import signed_in_as
from tests.viewer.conftest import make_ct_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_images_arriving_again_stop_the_viewer_with_the_way_back_kept(page, live_server, org_a, clinician_a):
    study = make_ct_study(org_a, clinician_a)
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": study.public_id}))
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-shown-pos", "0")
    Study.objects.filter(pk=study.pk).update(state=StudyState.PROCESSING)
    page.get_by_test_id("viewer-stage").focus()
    page.keyboard.press("End")  # an image not asked for yet
    message = page.get_by_test_id("viewer-message")
    expect(message).to_be_visible(timeout=5000)
    expect(message).to_contain_text("Images are still being added to this study")
    back = page.get_by_test_id("viewer-back")
    expect(back).to_have_text("Back to study")
    expect(back).to_have_attribute("href", study.get_absolute_url())
