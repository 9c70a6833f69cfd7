"""The viewer opens at the page's top on a phone, a tablet either way up and a desktop: the site's
header, the study's title, the way back and the rendition label (a preview must never pass for the
diagnostic original) are in sight, and so are the whole image and its slider, with no sideways
scroll. It used to open scrolled to the viewer (viewer.js scrolled there so that the slider was
in sight), the site's header above the screen's edge (found by QA)."""

from __future__ import annotations

import contextlib

import pytest

from tests.browser.conftest import device_page, signed_in_as
from tests.viewer.conftest import make_ct_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: (width, height), language, a touch device: a phone (in Spanish: its longer labels make the tools
#: taller), a tablet upright and on its side, a desktop
DEVICES = [((390, 844), "es", True), ((820, 1180), "en", True), ((1180, 820), "en", True),
           ((1280, 800), "en", False)]
MIN_STAGE = 250  # px: an image still worth reading

_LAYOUT = """() => {
  const box = s => { const r = document.querySelector(s).getBoundingClientRect();
                     return {top: r.top, bottom: r.bottom, height: r.height}; };
  return {scrollY: window.scrollY, width: innerWidth, height: innerHeight,
          scrollWidth: document.documentElement.scrollWidth,
          boxes: {header: box('.site-header'), title: box('.viewer-title'), back: box('[data-testid=viewer-back]'),
                  label: box('[data-testid=viewer-label]'), stage: box('[data-testid=viewer-stage]'),
                  slider: box('.viewer-slider')},
          label: document.querySelector('[data-testid=viewer-label]').dataset.kind};
}"""


@contextlib.contextmanager
def _desktop_page(page, viewport):
    """The suite's desktop page (no touch), at ``viewport``."""
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    yield page


def _layout_problems(page, name: str) -> list[str]:
    layout = page.evaluate(_LAYOUT)
    problems = []
    if layout["scrollY"] != 0:
        problems.append(f"{name}: opened scrolled down by {layout['scrollY']} px")
    if layout["scrollWidth"] > layout["width"]:
        problems.append(f"{name}: scrolls sideways ({layout['scrollWidth']} px wide)")
    if layout["label"] == "none":
        problems.append(f"{name}: the label names no rendition")
    for part, box in layout["boxes"].items():
        if box["top"] < 0 or box["bottom"] > layout["height"]:
            problems.append(f"{name}: {part} at {box['top']:.0f}-{box['bottom']:.0f}, out of sight")
    if layout["boxes"]["stage"]["height"] < MIN_STAGE:
        problems.append(f"{name}: the image is only {layout['boxes']['stage']['height']:.0f} px high")
    return problems


def _settled(page) -> None:
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_the_viewer_opens_at_its_top_with_the_header_the_label_and_the_image_in_sight(
    browser, page, live_server, org_a, clinician_a
):
    study = make_ct_study(org_a, clinician_a)
    problems = []
    for (width, height), language, touch in DEVICES:
        opened = device_page(browser, (width, height), language) if touch else _desktop_page(page, (width, height))
        with opened as device:
            signed_in_as(device, live_server.url, clinician_a)
            device.goto(f"{live_server.url}/studies/{study.public_id}/viewer/")
            # the first image is on screen, in full: the viewer has laid itself out
            device.wait_for_function("() => document.getElementById('viewer').dataset.shownQuality === 'diagnostic'")
            _settled(device)
            problems += _layout_problems(device, f"{width}x{height}")
            if touch and width > 390:
                # the tablet turned: the image and its slider fit the other way up too
                device.set_viewport_size({"width": height, "height": width})
                _settled(device)
                problems += _layout_problems(device, f"{width}x{height} turned to {height}x{width}")
    assert not problems, "\n".join(problems)
