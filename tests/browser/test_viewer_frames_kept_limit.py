"""The frames the viewer keeps in the page's memory (frames are ``no-store``: viewer.js keeps those
it fetched, see test_viewer_frames_in_memory.py) stay under their limit,
``LIGHTBOX_VIEWER_FRAMES_MEMORY_MB`` (100 MiB; the page's ``data-keep-bytes``): scrolling through a
study larger than the limit lets the least recently shown go, so the bytes kept
(``data-frames-kept-bytes``) never pass it; a frame let go is asked for again when shown, one
still kept is not. The page left (``pagehide``) lets every frame go: shown again, they are asked
for again.

Here the limit is a few frames' worth of the 20-slice phantom CT; the bytes kept are watched from
the page's start by a MutationObserver of the test's (every value the attribute took, not only
those seen between key presses)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.conftest import signed_in_as
from tests.browser.test_viewer_frames_in_memory import FrameRequests
from tests.viewer.conftest import SLICES, make_ct_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: frames the limit holds: a slice and its six prefetched neighbours (3 each side), and one more
KEPT_FRAMES = 8

# every value data-frames-kept-bytes takes, from the page's start: the largest in window.__keptPeak
WATCH_KEPT_BYTES = """
window.__keptPeak = 0;
new MutationObserver(function (records) {
  records.forEach(function (record) {
    [record.oldValue, record.target.getAttribute(record.attributeName)].forEach(function (value) {
      window.__keptPeak = Math.max(window.__keptPeak, Number(value || 0));
    });
  });
}).observe(document, { subtree: true, attributes: true, attributeOldValue: true,
                       attributeFilter: ["data-frames-kept-bytes"] });
"""


def _viewer(study) -> str:
    return reverse("viewer:viewer", kwargs={"study_id": study.public_id})


def _frame_url(instance, quality: str = "diagnostic") -> str:
    return reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + f"?frame=0&quality={quality}"


def _largest_frames(user, study) -> dict[str, int]:
    """The size of the study's largest frame of each quality the viewer may keep, as served."""
    client = Client()
    client.force_login(user)
    largest = {}
    for quality in ("diagnostic", "low"):
        for instance in study.phantom_instances:
            response = client.get(_frame_url(instance, quality))
            assert response.status_code == 200
            largest[quality] = max(largest.get(quality, 0), len(response.content))
    return largest


def _shown(page, pos: int) -> None:
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-shown-pos", str(pos))
    expect(viewer).to_have_attribute("data-shown-quality", "diagnostic")


def _kept_bytes(page) -> int:
    return int(page.locator("#viewer").get_attribute("data-frames-kept-bytes") or "-1")


def _kept(page) -> int:
    return int(page.locator("#viewer").get_attribute("data-frames-kept") or "-1")


def _asked(frames: FrameRequests, instance) -> int:
    """How many times the instance's diagnostic frame has been asked for."""
    wanted = _frame_url(instance)
    return sum(url.endswith(wanted) for url in frames.urls)


@pytest.fixture
def small_limit(settings, org_a, clinician_a):
    """A 20-slice CT, a limit of KEPT_FRAMES of its largest diagnostic frames (in MiB, as the
    setting is) and the largest frame the viewer may keep (a low-quality first paint's, maybe)."""
    study = make_ct_study(org_a, clinician_a)
    largest = _largest_frames(clinician_a, study)
    limit = KEPT_FRAMES * largest["diagnostic"]
    settings.LIGHTBOX_VIEWER_FRAMES_MEMORY_MB = limit / (1024 * 1024)
    return study, limit, max(largest.values())


def test_the_page_says_the_limit_100_mib_unless_set(client, settings, org_a, clinician_a):
    study = make_ct_study(org_a, clinician_a)
    client.force_login(clinician_a)
    assert b'data-keep-bytes="104857600"' in client.get(_viewer(study)).content
    settings.LIGHTBOX_VIEWER_FRAMES_MEMORY_MB = 0.5
    assert b'data-keep-bytes="524288"' in client.get(_viewer(study)).content


def test_scrolling_through_more_than_the_limit_keeps_the_frames_under_it(page, live_server, small_limit,
                                                                         clinician_a):
    study, limit, largest = small_limit
    instances = study.phantom_instances
    page.add_init_script(WATCH_KEPT_BYTES)
    frames = FrameRequests(page)
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(live_server.url + _viewer(study))
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-keep-bytes", str(limit))
    _shown(page, 0)
    stage = page.get_by_test_id("viewer-stage")
    stage.focus()
    for pos in range(1, SLICES):  # every slice, down to the last
        page.keyboard.press("ArrowDown")
        _shown(page, pos)
    frames.settle()

    # every slice was asked for, far more than the limit holds: it never held more than the limit
    assert all(_asked(frames, instance) >= 1 for instance in instances)
    peak = page.evaluate("window.__keptPeak")
    # filled up to it (the first frame let go made room for one of at most ``largest``), never past it
    assert limit - largest < peak <= limit
    assert 0 < _kept_bytes(page) <= limit
    assert 0 < _kept(page) <= KEPT_FRAMES

    # the slice before the last is still kept (shown, then prefetched around the last): not asked for
    before = _asked(frames, instances[SLICES - 2])
    page.keyboard.press("ArrowUp")
    _shown(page, SLICES - 2)
    frames.settle()
    assert _asked(frames, instances[SLICES - 2]) == before

    # the first slice was let go long ago: shown again, it is asked for again
    assert _asked(frames, instances[0]) == 1
    page.keyboard.press("Home")
    _shown(page, 0)
    frames.settle()
    assert _asked(frames, instances[0]) == 2
    assert page.evaluate("window.__keptPeak") <= limit


def test_the_page_left_lets_its_frames_go(page, live_server, org_a, clinician_a):
    study = make_ct_study(org_a, clinician_a)
    first = study.phantom_instances[0]
    frames = FrameRequests(page)
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(live_server.url + _viewer(study))
    _shown(page, 0)
    frames.settle()
    stage = page.get_by_test_id("viewer-stage")
    stage.focus()
    page.keyboard.press("ArrowDown")
    _shown(page, 1)
    page.keyboard.press("Home")
    _shown(page, 0)
    frames.settle()
    assert _asked(frames, first) == 1  # kept: shown again without a request
    assert _kept(page) >= 4

    # the page hidden as a browser that keeps it for Back (bfcache) hides it: the frames are let go
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }))")
    expect(page.locator("#viewer")).to_have_attribute("data-frames-kept", "0")
    expect(page.locator("#viewer")).to_have_attribute("data-frames-kept-bytes", "0")
    page.keyboard.press("ArrowDown")
    _shown(page, 1)
    page.keyboard.press("Home")
    _shown(page, 0)
    frames.settle()
    assert _asked(frames, first) == 2

    # left for another page and back: the frames are asked for again
    page.goto(live_server.url + "/")
    page.go_back()
    _shown(page, 0)
    frames.settle()
    assert _asked(frames, first) == 3


def test_a_page_brought_back_from_the_back_forward_cache_is_loaded_again(page, live_server, org_a, clinician_a):
    """A browser that keeps a page left for Back (its back/forward cache; Chromium keeps no
    ``no-store`` page there when driven by Playwright, so the events are the browser's, dispatched
    here) brings it back with its frames let go and its viewer session closed: the page is loaded
    again, so the server decides again and the access check runs again, and its frames are asked
    for again."""
    study = make_ct_study(org_a, clinician_a)
    first = study.phantom_instances[0]
    viewer_url = live_server.url + _viewer(study)
    frames = FrameRequests(page)
    pages = []
    page.on("request", lambda request: pages.append(request.url) if request.resource_type == "document" else None)
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(viewer_url)
    _shown(page, 0)
    frames.settle()
    assert pages == [viewer_url]
    assert _asked(frames, first) == 1

    with page.expect_navigation():
        page.evaluate("""setTimeout(function () {
            window.dispatchEvent(new PageTransitionEvent("pagehide", { persisted: true }));
            window.dispatchEvent(new PageTransitionEvent("pageshow", { persisted: true }));
        }, 0)""")
    _shown(page, 0)
    frames.settle()
    assert pages == [viewer_url, viewer_url]
    assert _asked(frames, first) == 2
