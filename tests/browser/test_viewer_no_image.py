"""The viewer in Chromium claims no quality for what it has no image of: an RT plan (no image in
the object) and a CT whose pixel data is shorter than its header says (not decodable) each say
plainly that there is no image, the Mode reads "No image to show" (not "Diagnostic quality
available") and the window presets, zoom, fit, invert and the window/pan/zoom drags are disabled;
they come back with the next image shown. In a series that mixes images with objects without one:
a drag over a frame that cannot be decoded does not ask for it again at every move, the close
beacon counts the images shown (not requests), prefetch skips the objects with no image, and a
two-finger pinch leaves the zoom alone (the next image does not open zoomed)."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from tests.browser.conftest import device_page, signed_in_as
from tests.viewer.conftest import make_ct_study
from tests.viewer.no_image import store_mixed_series, store_report, store_rt_plan, store_short_ct

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


def _frame_requests(urls, instance) -> int:
    return sum(f"/instances/{instance.public_id}/frame" in url for url in urls)


def _open_mixed(page, live_server, org_a, clinician_a):
    """The viewer on a study whose first series is store_mixed_series's (image, no image, not
    decodable, image), the frame URLs it asks for collected from the start; returns (study,
    instances, urls)."""
    study = make_ct_study(org_a, clinician_a)  # its phantom CT is series 1
    instances = store_mixed_series(study, number=0)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": study.public_id}))
    expect(page.locator("#viewer")).to_have_attribute("data-shown-quality", "diagnostic")
    return study, instances, urls


def _to_the_undecodable_frame(page):
    stage = page.get_by_test_id("viewer-stage")
    stage.focus()
    page.keyboard.press("ArrowDown")  # 2 / 4: no image in the object
    expect(page.get_by_test_id("viewer-message")).to_contain_text("this object holds no image")
    page.keyboard.press("ArrowDown")  # 3 / 4: not decodable
    expect(page.get_by_test_id("viewer-message")).to_contain_text("shorter than its header says")
    expect(page.get_by_test_id("viewer-position")).to_have_text("3 / 4")


def test_prefetch_skips_the_objects_with_no_image(page, live_server, org_a, clinician_a):
    _, (_, plan, short, last), urls = _open_mixed(page, live_server, org_a, clinician_a)
    # the neighbours of the first image are warmed one after another, nearest first: the frame
    # with no image (2 / 4) would have been asked for before the other two
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _frame_requests(urls, last):
        page.wait_for_timeout(50)
    assert _frame_requests(urls, short) and _frame_requests(urls, last)
    assert _frame_requests(urls, plan) == 0


def test_a_drag_over_an_undecodable_frame_asks_for_it_once_and_images_shown_are_counted(
        page, live_server, org_a, clinician_a):
    study, (_, _, short, _), urls = _open_mixed(page, live_server, org_a, clinician_a)
    _to_the_undecodable_frame(page)
    page.wait_for_timeout(300)  # its small frame, had the full one been slow, is asked for after 120 ms
    asked = _frame_requests(urls, short)

    # a scroll drag (the only drag without an image) that stays on this frame: a quarter of the
    # stage's height per image, so moving 20 px up and down does not leave it
    box = page.get_by_test_id("viewer-stage").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for dy in (5, 10, 15, 20, 10, 0, -10, -20, 0, 5):
        page.mouse.move(x + dy, y + dy)
    page.mouse.up()
    page.wait_for_timeout(400)
    expect(page.get_by_test_id("viewer-position")).to_have_text("3 / 4")
    expect(page.get_by_test_id("viewer-message")).to_contain_text("shorter than its header says")
    assert _frame_requests(urls, short) == asked

    page.keyboard.press("ArrowDown")  # 4 / 4: an image again
    expect(page.locator("#viewer")).to_have_attribute("data-shown-pos", "3")
    expect(page.locator("#viewer")).to_have_attribute("data-shown-quality", "diagnostic")

    # the close beacon counts the images shown: the first and the last, not the object with no
    # image, the frame that could not be decoded, a prefetch or a second quality of one image
    page.goto(live_server.url + "/")
    closed = AuditEvent.objects.filter(action="viewer.closed", study_ref=study.public_id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not closed.exists():
        time.sleep(0.1)
    assert closed.get().details["frames"] == 2


def _pinch(page, cdp, spread: float) -> None:
    """Two fingers down at the stage's centre, drawn apart by ``spread`` px each, lifted."""
    box = page.get_by_test_id("viewer-stage").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def touch(kind, d):
        points = [] if kind == "touchEnd" else [{"x": x - 20 - d, "y": y, "id": 1}, {"x": x + 20 + d, "y": y, "id": 2}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 0)
    for step in range(1, 6):
        touch("touchMove", spread * step / 5)
    touch("touchEnd", spread)


def test_a_pinch_without_an_image_does_not_zoom_the_next_image(browser, live_server, org_a, clinician_a):
    with device_page(browser, (768, 1024)) as page:
        _open_mixed(page, live_server, org_a, clinician_a)
        cdp = page.context.new_cdp_session(page)
        zoom = page.locator("#meta-zoom")
        fit = zoom.text_content()

        _pinch(page, cdp, 60)  # on an image, a pinch zooms it
        expect(zoom).not_to_have_text(fit)
        page.get_by_test_id("viewer-stage").focus()
        page.keyboard.press("0")  # fit
        expect(zoom).to_have_text(fit)

        _to_the_undecodable_frame(page)
        _pinch(page, cdp, 60)
        page.keyboard.press("ArrowDown")  # 4 / 4: an image again, at the fitted size
        expect(page.locator("#viewer")).to_have_attribute("data-shown-pos", "3")
        expect(zoom).to_have_text(fit)


def test_a_series_with_no_image_has_a_labelled_thumbnail_and_asks_for_no_frame(page, live_server, org_a,
                                                                               clinician_a):
    study = make_ct_study(org_a, clinician_a)  # its phantom CT is series 1
    plan = store_rt_plan(study, number=0)
    short = store_short_ct(study, number=2)
    report = store_report(study, number=3)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": study.public_id}))
    page.wait_for_load_state("load")
    buttons = page.locator(".viewer-series-button")
    expect(buttons).to_have_count(4)

    # the plan and the report: "No image" and what they hold, in the thumbnail's place
    for index, kind in ((0, "Treatment plan"), (3, "Report")):
        placeholder = buttons.nth(index).get_by_test_id("viewer-thumb-none")
        expect(placeholder).to_have_text("No image" + kind)
        expect(buttons.nth(index).locator("img")).to_have_count(0)
    # the phantom CT: its image
    # (thumbnails are asked for a few at a time: its <img> is there, without pixels, until they come)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=buttons.nth(1).locator("img").element_handle())
    # the CT that cannot be decoded: asked for once (nothing says so before), then the placeholder
    expect(buttons.nth(2).get_by_test_id("viewer-thumb-none")).to_have_text("No imageCannot be shown")
    expect(buttons.nth(2).locator("img")).to_have_count(0)

    page.wait_for_timeout(500)
    assert _frame_requests(urls, plan) == 0 and _frame_requests(urls, report) == 0
    thumbs = [u for u in urls if f"/instances/{short.public_id}/frame" in u and "size=64" in u]
    assert len(thumbs) == 1
