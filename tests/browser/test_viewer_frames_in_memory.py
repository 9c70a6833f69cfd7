"""The viewer's frames are kept in the page's memory, not in the browser's disk cache (found by a
security review: frames were ``private, no-cache``, so a shared workstation's disk cache held the
patient's images after access ended, cleared only by an explicit sign-out). Frames are now
``no-store`` (tests/viewer/test_views.py::test_frames_carry_an_etag_and_are_not_stored) and
viewer.js keeps those it fetched in a bounded in-memory cache: scrolling to a slice and back asks
for nothing again, prefetched neighbours included; once access ends the viewer stops and lets all
of them go (``data-frames-kept``, the number of frames it holds)."""

from __future__ import annotations

from collections import Counter

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.conftest import signed_in_as
from tests.viewer.conftest import make_ct_study, make_preview_recipient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHECK_SECONDS = 1
STOPS_WITHIN_MS = 4 * CHECK_SECONDS * 1000


@pytest.fixture(autouse=True)
def _quick_checks(settings):
    settings.LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS = CHECK_SECONDS


class FrameRequests:
    """The viewer's frame requests (not the series thumbnails' ``size=64``), and those on their way."""

    def __init__(self, page):
        self.page = page
        self.urls: list[str] = []
        self.on_their_way: set = set()
        page.on("request", self._asked)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    @staticmethod
    def _counted(request) -> bool:
        return "/frame?" in request.url and "size=" not in request.url

    def _asked(self, request) -> None:
        if self._counted(request):
            self.urls.append(request.url)
            self.on_their_way.add(request)

    def _ended(self, request) -> None:
        self.on_their_way.discard(request)

    def settle(self) -> None:
        """Until no frame has been on its way for a second (the prefetching done): waits on the
        requests, not on a guess of how long they take, so a slow machine only waits longer."""
        quiet, seen = 0, -1
        for _ in range(600):  # at most a minute
            self.page.wait_for_timeout(100)
            if self.on_their_way or len(self.urls) != seen:
                quiet, seen = 0, len(self.urls)
            else:
                quiet += 1
                if quiet >= 10:
                    return
        raise AssertionError(f"frames still asked for: {len(self.on_their_way)} on their way")


def _viewer(study) -> str:
    return reverse("viewer:viewer", kwargs={"study_id": study.public_id})


def _shown(page, pos: int, quality: str) -> None:
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-shown-pos", str(pos))
    expect(viewer).to_have_attribute("data-shown-quality", quality)


def _kept(page) -> int:
    return int(page.locator("#viewer").get_attribute("data-frames-kept") or "-1")


def test_scrolling_to_a_slice_and_back_asks_for_no_frame_again(page, live_server, org_a, clinician_a):
    study = make_ct_study(org_a, clinician_a)
    frames = FrameRequests(page)
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(live_server.url + _viewer(study))
    _shown(page, 0, "diagnostic")
    frames.settle()
    assert _kept(page) >= 4  # the first slice and its three neighbours, prefetched
    stage = page.get_by_test_id("viewer-stage")
    stage.focus()
    for pos in range(1, 6):
        page.keyboard.press("ArrowDown")
        _shown(page, pos, "diagnostic")
    frames.settle()
    asked_before = len(frames.urls)
    assert asked_before > 0

    # back to the first slice, then down again: every frame on the way is in memory
    page.keyboard.press("Home")
    _shown(page, 0, "diagnostic")
    for pos in (1, 2):
        page.keyboard.press("ArrowDown")
        _shown(page, pos, "diagnostic")
    frames.settle()
    assert frames.urls[asked_before:] == []
    # and no frame was asked for twice on the way there either (a prefetched one not again when shown)
    twice = [url for url, n in Counter(frames.urls).items() if n > 1]
    assert twice == []
    first = str(study.phantom_instances[0].public_id)
    assert sum(first in url and "quality=diagnostic" in url for url in frames.urls) == 1


def test_a_revoked_share_stops_the_viewer_and_lets_its_frames_go(page, live_server, org_a, clinician_a):
    from apps.sharing import services

    study = make_ct_study(org_a, clinician_a)
    reader = make_preview_recipient(org_a, clinician_a, study)
    frames = FrameRequests(page)
    signed_in_as(page, live_server.url, reader)
    page.goto(live_server.url + _viewer(study))
    _shown(page, 0, "preview")
    page.get_by_test_id("viewer-stage").focus()
    page.keyboard.press("ArrowDown")
    _shown(page, 1, "preview")
    frames.settle()
    assert _kept(page) >= 4
    asked = len(frames.urls)

    services.grants_revoke(grants=[reader.grant], by=clinician_a, reason="test")
    # the reader does nothing: the access check stops the viewer, which lets every frame go
    expect(page.get_by_test_id("viewer-message")).to_contain_text("Your access to this study has ended",
                                                                  timeout=STOPS_WITHIN_MS)
    expect(page.locator("#viewer")).to_have_attribute("data-frames-kept", "0")
    # a slice it held is neither shown again nor asked for
    page.get_by_test_id("viewer-stage").focus()
    for key in ("ArrowUp", "Home", "ArrowDown"):
        page.keyboard.press(key)
    frames.settle()
    assert len(frames.urls) == asked
    assert page.get_by_test_id("viewer-label").inner_text() == "No image"
    expect(page.locator("#viewer")).not_to_have_attribute("data-shown-pos", "1")
