"""The viewer in Chromium claims no quality for what it has no image of: an RT plan (no image in
the object) and a CT whose pixel data is shorter than its header says (not decodable) each say
plainly that there is no image, the Mode reads "No image to show" (not "Diagnostic quality
available") and the window presets, zoom, fit, invert and the window/pan/zoom drags are disabled;
they come back with the next image shown."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.conftest import signed_in_as
from tests.viewer.conftest import make_ct_study
from tests.viewer.no_image import store_rt_plan, store_short_ct

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IMAGE_TOOLS = ["preset-default", "preset-lung"]


def _tools(page):
    return [page.get_by_test_id(t) for t in IMAGE_TOOLS] + [
        page.locator("#viewer-zoom-in"), page.locator("#viewer-zoom-out"), page.locator("#viewer-fit"),
        page.locator("#viewer-invert"), page.locator("input[name=viewer-tool][value=window]"),
        page.locator("input[name=viewer-tool][value=zoom]")]


def test_no_image_and_an_undecodable_image_claim_no_quality(page, live_server, org_a, clinician_a):
    study = make_ct_study(org_a, clinician_a)  # its phantom CT is series 1
    store_rt_plan(study, number=0)
    store_short_ct(study, number=2)
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": study.public_id}))
    viewer, mode, message = page.locator("#viewer"), page.get_by_test_id("meta-mode"), page.get_by_test_id(
        "viewer-message")

    # series 0: the RT plan, first in the list
    expect(viewer).to_have_attribute("data-image", "none")
    expect(message).to_contain_text("There is no image to show: this object holds no image")
    expect(mode).to_have_text("No image to show")
    expect(page.get_by_test_id("viewer-label")).to_have_text("No image")
    for tool in _tools(page):
        expect(tool).to_be_disabled()

    # series 1: the phantom CT, an image: the page's Mode and the tools are back
    page.locator(".viewer-series-button").nth(1).click()
    expect(viewer).to_have_attribute("data-shown-quality", "diagnostic")
    expect(viewer).to_have_attribute("data-image", "shown")
    expect(mode).to_have_text("Diagnostic quality available")
    expect(message).to_be_hidden()
    for tool in _tools(page):
        expect(tool).to_be_enabled()

    # series 2: a CT whose pixel data is short: why, in words; no quality claimed
    page.locator(".viewer-series-button").nth(2).click()
    expect(message).to_contain_text("shorter than its header says")
    expect(message).not_to_contain_text("Error")
    expect(viewer).to_have_attribute("data-image", "none")
    expect(mode).to_have_text("No image to show")
    for tool in _tools(page):
        expect(tool).to_be_disabled()
