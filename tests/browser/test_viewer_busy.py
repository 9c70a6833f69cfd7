"""A server process that has no render slot free answers a frame 503 "busy" with Retry-After
(tests/viewer/test_render_slots.py): viewer.js asks for it again after that wait, so the image and
the series thumbnail come once a slot is free, and, still busy after its few retries, says so in
the image's and the thumbnail's place, rather than calling the image undecodable or the network down."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.viewer import services
from tests.browser.conftest import device_page, signed_in_as
from tests.viewer.conftest import make_ct_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def slots(settings, monkeypatch):
    settings.LIGHTBOX_VIEWER_RENDERS_AT_ONCE = 1
    monkeypatch.setattr(services, "RENDER_WAIT_SECONDS", 0.05)
    slots = services.render_slots()
    assert slots.acquire(blocking=False)  # the one slot taken, as by a long render
    held = [True]
    yield slots, held
    if held[0]:
        slots.release()


def _open(page, live_server, org_a, clinician_a):
    study = make_ct_study(org_a, clinician_a)
    answers: list[tuple[str, int]] = []
    page.on("response", lambda r: answers.append((r.url, r.status)) if "/frame" in r.url else None)
    signed_in_as(page, live_server.url, clinician_a)
    # the page's timers on Playwright's clock: time flows as usual, and the test moves it on past
    # each Retry-After (run_for) instead of waiting it out in real time
    page.clock.install()
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": study.public_id}))
    return answers


def _on_the_clock_until(page, done, *, step_ms: int = 1_000, rounds: int = 100) -> None:
    """Move the page's clock on ``step_ms`` at a time (each retry's 1 s Retry-After), with a
    moment of real time between for the frames asked meanwhile to be answered, until ``done()``."""
    for _ in range(rounds):
        if done():
            return
        page.clock.run_for(step_ms)
        page.wait_for_timeout(100)
    assert done()


def test_a_busy_frame_is_asked_again_and_shown_once_a_slot_is_free(browser, live_server, org_a, clinician_a, slots):
    semaphore, held = slots
    with device_page(browser, (768, 1024)) as page:  # a tablet
        answers = _open(page, live_server, org_a, clinician_a)

        def both_busy() -> bool:
            busy = [url for url, status in answers if status == 503]
            return any("size=64" in url for url in busy) and any("size=64" not in url for url in busy)

        for _ in range(150):  # the first answers: the image's and the thumbnail's, both busy
            if both_busy():
                break
            page.wait_for_timeout(100)
        busy = [url for url, status in answers if status == 503]
        assert any("size=64" in url for url in busy) and any("size=64" not in url for url in busy)
        expect(page.locator("#viewer")).not_to_have_attribute("data-shown-quality", "diagnostic")
        semaphore.release()
        held[0] = False
        page.clock.run_for(1_000)  # past the Retry-After of those asked meanwhile
        expect(page.locator("#viewer")).to_have_attribute("data-shown-quality", "diagnostic", timeout=15000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=page.locator("#viewer-series-list img").element_handle(), timeout=15000)
        expect(page.get_by_test_id("viewer-message")).to_be_hidden()
        assert not any(status >= 500 and status != 503 for _url, status in answers)


def test_a_frame_still_busy_after_its_retries_says_so_in_its_place(browser, live_server, org_a, clinician_a, slots):
    with device_page(browser, (390, 844)) as page:  # a phone
        answers = _open(page, live_server, org_a, clinician_a)
        message = page.get_by_test_id("viewer-message")
        thumb_none = page.locator("#viewer-series-list").get_by_test_id("viewer-thumb-none")
        _on_the_clock_until(page, lambda: "The server is busy" in (message.text_content() or "")
                            and thumb_none.count() == 1)  # four retries, 1 s apart, each
        expect(page.get_by_test_id("viewer-message")).to_contain_text("The server is busy", timeout=20000)
        expect(page.locator("#viewer-series-list").get_by_test_id("viewer-thumb-none")).to_have_text(
            "No imageServer busy", timeout=20000)
        expect(page.locator("#viewer")).to_have_attribute("data-image", "none")
        # asked again a bounded number of times (the first ask and four retries), not for ever:
        # none more in two minutes of the page's clock
        page.clock.run_for(120_000)
        page.wait_for_timeout(500)
        thumbs = [url for url, status in answers if "size=64" in url]
        assert len(thumbs) == 5 and all(status == 503 for url, status in answers)
