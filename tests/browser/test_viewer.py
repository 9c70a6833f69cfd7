"""Must-show 1: the viewer in Chromium on a 20-slice CT phantom: scroll to a slice, apply the lung
preset, and read from the screenshot's pixels that the slice and then the window changed. Also:
a revoked grant stops an open viewer at its next frame; the page fits a phone; closing is audited.
Keyboard and screen readers (an axe-core and keyboard audit): window/level and pan from the keys
for any modality, the image named by what is on screen, disabled controls once access has ended,
a focus ring that stands out next to the black stage and the grey page."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from PIL import Image
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from bench.frames_synthetic import body_hu
from tests.viewer.conftest import make_ct_study, make_preview_recipient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ct_study(org_a, clinician_a):
    return make_ct_study(org_a, clinician_a)


@pytest.fixture
def preview_recipient(org_a, clinician_a, ct_study):
    return make_preview_recipient(org_a, clinician_a, ct_study)


def _sign_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    page.context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": live_server.url}])


def _gray(value_hu: float, center: float, width: float) -> float:
    low = center - 0.5 - (width - 1) / 2
    return float(np.clip((value_hu - low) / (width - 1) * 255, 0, 255))


def _gray_image(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)


def _centre_of_canvas(page, at: float = 0.5) -> float:
    """Mean gray of a small patch of the canvas screenshot, centred horizontally, ``at`` of its height."""
    shot = page.get_by_test_id("viewer-canvas").screenshot()
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float32)
    h, w = image.shape
    y = int(h * at)
    return float(image[y - 3:y + 4, w // 2 - 3:w // 2 + 4].mean())


def _wait_shown(page, *, pos: int, quality: str, window: str | None = None) -> None:
    """Wait until the frame at ``pos`` is on screen at ``quality`` (and ``window``); attributes set
    by viewer.js when it draws a frame (no string evaluation: the page's CSP forbids it)."""
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-shown-pos", str(pos))
    if window:
        expect(viewer).to_have_attribute("data-shown-window", window)
    expect(viewer).to_have_attribute("data-shown-quality", quality)


DIAGNOSTIC = "Diagnostic original (lossless)"
PREVIEW = "Preview - not for diagnostic use"
LOADING = "Preview - not for diagnostic use (loading full quality)"


def _canvas_name(quality: str, n: int, total: int = 20) -> str:
    return f"{quality} — series 1 · Phantom axial, image {n} of {total}"


def _body_left_x(png: bytes) -> int:
    """Where the phantom's body (brighter than air) begins, from the left, halfway down a screenshot."""
    image = _gray_image(png)
    return int(np.nonzero(image[image.shape[0] // 2] > 20)[0][0])


def _body_top_y(png: bytes) -> int:
    """The top row of the phantom's body in a screenshot (the first rows may be the label's edge)."""
    return 2 + int(np.nonzero((_gray_image(png)[2:] > 20).any(axis=1))[0][0])


def _luminance(rgb) -> float:
    channels = [c / 255 for c in rgb[:3]]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _rgb(css: str) -> list[float]:
    return [float(v) for v in css[css.index("(") + 1:css.index(")")].split(",")[:3]]


def _contrast(a, b) -> float:
    high, low = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_scroll_to_a_slice_then_lung_preset_changes_the_pixels(page, live_server, clinician_a, ct_study, output_dir):
    _sign_in(page, live_server, clinician_a)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    _wait_shown(page, pos=0, quality="diagnostic", window="40/400")
    label = page.get_by_test_id("viewer-label")
    assert label.inner_text() == "Diagnostic original (lossless)"
    first = _centre_of_canvas(page)
    assert abs(first - _gray(body_hu(0), 40, 400)) <= 4, first

    page.get_by_test_id("viewer-stage").focus()
    for _ in range(12):
        page.keyboard.press("ArrowDown")
    _wait_shown(page, pos=12, quality="diagnostic")
    assert page.get_by_test_id("viewer-position").inner_text() == "13 / 20"
    sliced = _centre_of_canvas(page)
    assert abs(sliced - _gray(body_hu(12), 40, 400)) <= 4, sliced
    assert sliced - first > 60  # the slice changed

    page.get_by_test_id("preset-lung").click()
    _wait_shown(page, pos=12, quality="diagnostic", window="-600/1500")
    lung = _centre_of_canvas(page)
    assert abs(lung - _gray(body_hu(12), -600, 1500)) <= 4, lung
    assert lung - sliced > 50  # the window changed
    assert page.get_by_test_id("meta-window").inner_text() == "-600/1500"
    assert label.is_visible() and label.inner_text() == "Diagnostic original (lossless)"
    page.screenshot(path=str(output_dir / "viewer-lung.png"))
    # the image is named by its quality label, series and position (role img)
    expect(page.get_by_role("img", name=_canvas_name(DIAGNOSTIC, 13))).to_be_visible()

    page.goto(live_server.url + "/")  # pagehide: the beacon closes the session
    page.wait_for_timeout(200)
    for _ in range(50):
        if AuditEvent.objects.filter(action="viewer.closed", study_ref=ct_study.public_id).exists():
            break
        page.wait_for_timeout(100)
    assert AuditEvent.objects.filter(action="viewer.opened", study_ref=ct_study.public_id).count() == 1
    assert AuditEvent.objects.filter(action="viewer.closed", study_ref=ct_study.public_id).count() == 1
    closed = AuditEvent.objects.get(action="viewer.closed", study_ref=ct_study.public_id)
    assert closed.details["reason"] == "closed"  # the page's beacon, not the idle sweep
    from apps.viewer.models import ViewerSession

    assert ViewerSession.objects.get(key=closed.details["session"]).close_reason == "closed"


def test_preview_recipient_on_a_phone_is_stopped_by_revocation(page, live_server, clinician_a, preview_recipient,
                                                                ct_study, output_dir):
    from apps.sharing import services

    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, live_server, preview_recipient)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    _wait_shown(page, pos=0, quality="preview")
    label = page.get_by_test_id("viewer-label")
    assert label.inner_text() == "Preview - not for diagnostic use"
    expect(page.get_by_role("img", name=_canvas_name(PREVIEW, 1))).to_be_attached()
    page.get_by_test_id("viewer-keys").get_by_text("Keyboard").click()  # the list of keys fits too
    expect(page.get_by_text("narrower window (more contrast), wider window")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(output_dir / "viewer-phone-preview.png"), full_page=True)
    assert _centre_of_canvas(page, at=0.88) > 20  # the body phantom, below where messages appear

    services.grants_revoke(grants=[preview_recipient.grant], by=clinician_a, reason="test")
    page.get_by_test_id("viewer-stage").focus()
    page.keyboard.press("ArrowDown")
    message = page.get_by_test_id("viewer-message")
    message.wait_for(state="visible")
    assert "access to this study has ended" in message.inner_text()
    assert label.is_visible() and label.inner_text() == "No image"
    assert _centre_of_canvas(page, at=0.88) < 5  # nothing left on screen
    expect(page.get_by_role("img", name="No image")).to_be_attached()

    # the controls say it (disabled), not only by looking faded, and nothing operates them
    controls = page.locator("#viewer-series-list button, .viewer-toolbar button, .viewer-toolbar input, "
                            ".viewer-toolbar select, .viewer-slider input")
    assert controls.count() >= 12
    for i in range(controls.count()):
        expect(controls.nth(i)).to_be_disabled()
    page.get_by_test_id("viewer-stage").focus()
    for key in ("End", "i", "w", "Shift+ArrowRight", "+"):
        page.keyboard.press(key)
    page.get_by_test_id("viewer-canvas").hover(position={"x": 20, "y": 20})
    page.mouse.wheel(0, 400)
    page.wait_for_timeout(200)
    assert page.get_by_test_id("viewer-position").inner_text() == "2 / 20"
    assert page.locator("#viewer-invert").get_attribute("aria-pressed") == "false"
    assert label.inner_text() == "No image"

    # the text still shown keeps 4.5:1: no fading (opacity), colours against what is behind them
    texts = page.evaluate("""() => Array.from(document.querySelectorAll(
            '.viewer-toolbar label, .viewer-toolbar button, .viewer-toolbar select, .viewer-slider label, '
        + '#viewer-position, #viewer-series-list span'))
      .filter(el => el.offsetParent !== null && el.textContent.trim())
      .map(el => {
        let opacity = 1, bg = null;
        for (let a = el; a; a = a.parentElement) {
          const s = getComputedStyle(a);
          opacity *= Number(s.opacity);
          if (!bg && s.backgroundColor !== 'rgba(0, 0, 0, 0)') { bg = s.backgroundColor; }
        }
        return [el.textContent.trim(), getComputedStyle(el).color, bg || 'rgb(255, 255, 255)', opacity];
      })""")
    assert len(texts) >= 10
    page.screenshot(path=str(output_dir / "viewer-phone-stopped.png"), full_page=True)
    for text, colour, background, opacity in texts:
        fg, bg = _rgb(colour), _rgb(background)
        seen = [b + (f - b) * opacity for f, b in zip(fg, bg, strict=True)]  # what fading leaves of the text
        assert _contrast(seen, bg) >= 4.5, (text, colour, background, opacity)


def test_window_level_and_pan_from_the_keyboard_on_an_mr_series(page, live_server, clinician_a, ct_study):
    """The CT presets are hidden for MR (and NM); the keys still set window and level, in steps of
    the current window, and Shift+arrows move the image."""
    from apps.imaging.models import Series

    Series.objects.filter(study=ct_study).update(modality="MR")
    _sign_in(page, live_server, clinician_a)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    _wait_shown(page, pos=0, quality="diagnostic", window="40/400")
    expect(page.get_by_test_id("preset-lung")).to_be_hidden()
    stage = page.get_by_test_id("viewer-stage")
    stage.focus()
    centre = body_hu(0)

    page.keyboard.press("w")  # narrower window: 400 * 0.8
    _wait_shown(page, pos=0, quality="diagnostic", window="40/320")
    assert abs(_centre_of_canvas(page) - _gray(centre, 40, 320)) <= 4
    page.keyboard.press("Shift+L")  # level up by a twentieth of the window
    _wait_shown(page, pos=0, quality="diagnostic", window="56/320")
    assert abs(_centre_of_canvas(page) - _gray(centre, 56, 320)) <= 4
    page.keyboard.press("l")
    page.keyboard.press("l")
    _wait_shown(page, pos=0, quality="diagnostic", window="24/320")
    page.keyboard.press("Shift+W")  # wider: 320 * 1.25
    _wait_shown(page, pos=0, quality="diagnostic", window="24/400")
    assert abs(_centre_of_canvas(page) - _gray(centre, 24, 400)) <= 4
    assert page.get_by_test_id("meta-window").inner_text() == "24/400"

    # Shift+arrows move the image by a tenth of the stage's width
    canvas = page.get_by_test_id("viewer-canvas")
    step = stage.bounding_box()["width"] / 10
    shot = canvas.screenshot()
    left, top = _body_left_x(shot), _body_top_y(shot)
    for _ in range(3):
        page.keyboard.press("Shift+ArrowRight")
    assert abs(_body_left_x(canvas.screenshot()) - (left + 3 * step)) <= 2, (left, step)
    page.keyboard.press("Shift+ArrowLeft")
    assert abs(_body_left_x(canvas.screenshot()) - (left + 2 * step)) <= 2
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowUp")
    assert abs(_body_top_y(canvas.screenshot()) - (top + step)) <= 2, (top, step)
    assert page.get_by_test_id("viewer-position").inner_text() == "1 / 20"  # not the next slice

    # a held key asks for small frames only (like a drag); letting go loads the full frame
    page.keyboard.down("w")
    page.keyboard.down("w")  # auto-repeat
    page.keyboard.down("w")
    _wait_shown(page, pos=0, quality="low", window="24/205")  # 400 * 0.8 ** 3 = 204.8
    page.keyboard.up("w")
    _wait_shown(page, pos=0, quality="diagnostic", window="24/205")

    # Ctrl and + is the browser's page zoom, not the image's
    zoom = page.locator("#meta-zoom").inner_text()
    page.keyboard.press("Control+=")
    assert page.locator("#meta-zoom").inner_text() == zoom
    page.keyboard.press("+")
    expect(page.locator("#meta-zoom")).not_to_have_text(zoom)


def test_the_image_is_named_by_what_is_on_screen(page, live_server, clinician_a, ct_study):
    """The canvas is an image named by its quality label, series and position, from the frame on
    screen: while the next frame loads it keeps the shown frame's name, then the preview's, then
    the original's (never the original's name on a preview). Image 2's frames are held from the
    start: prefetched (as image 1's neighbour) and kept in memory, it would be shown at once."""
    _sign_in(page, live_server, clinician_a)
    second = str(ct_study.phantom_instances[1].public_id)
    held, hold = [], [True]

    def frames(route):
        if hold[0] and second in route.request.url:
            held.append(route)
        else:
            route.continue_()

    page.route("**/viewer/**", frames)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    _wait_shown(page, pos=0, quality="diagnostic")
    expect(page.get_by_role("img", name=_canvas_name(DIAGNOSTIC, 1))).to_be_visible()

    stage = page.get_by_role("application", name="Phantom CT")
    expect(stage).to_have_attribute("aria-roledescription", "image viewer")
    expect(stage).to_have_accessible_description(re.compile("move the image.*narrower window"))

    stage.focus()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_test_id("viewer-position")).to_have_text("2 / 20")
    for _ in range(100):  # the low-quality request goes out after 120 ms
        if any("quality=low" in r.request.url for r in held):
            break
        page.wait_for_timeout(20)
    # nothing of image 2 is on screen yet: the name is still image 1's
    expect(page.get_by_role("img", name=_canvas_name(DIAGNOSTIC, 1))).to_be_attached()
    for route in [r for r in held if "quality=low" in r.request.url]:
        held.remove(route)
        route.continue_()
    _wait_shown(page, pos=1, quality="low")
    expect(page.get_by_role("img", name=_canvas_name(LOADING, 2))).to_be_attached()
    hold[0] = False
    for route in held:
        route.continue_()
    _wait_shown(page, pos=1, quality="diagnostic")
    expect(page.get_by_role("img", name=_canvas_name(DIAGNOSTIC, 2))).to_be_attached()


def test_the_focus_ring_stands_out_on_the_stage_and_the_page(page, live_server, clinician_a, ct_study):
    """Two rings: yellow against the black stage, dark against the page (>= 3:1 each); on a tablet
    and a phone the series list, which scrolls, leaves the ring room."""
    _sign_in(page, live_server, clinician_a)
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id}))
    _wait_shown(page, pos=0, quality="diagnostic")
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    page.locator("#viewer-fps").focus()
    page.keyboard.press("Tab")  # by keyboard, so :focus-visible applies
    stage = page.get_by_test_id("viewer-stage")
    expect(stage).to_be_focused()

    def pixel(x: float, y: float):
        shot = Image.open(io.BytesIO(page.screenshot(clip={"x": x, "y": y, "width": 1, "height": 1})))
        return shot.convert("RGB").getpixel((0, 0))

    box = stage.bounding_box()
    y = box["y"] + box["height"] * 0.6
    inside, inner, outer, page_bg = (pixel(box["x"] + 3, y), pixel(box["x"] - 1, y), pixel(box["x"] - 4, y),
                                     pixel(box["x"] - 9, y))
    assert _contrast(inner, inside) >= 3, (inner, inside)
    assert _contrast(outer, page_bg) >= 3, (outer, page_bg)

    for width in (768, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator(".viewer-series-button").first.focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")
        button = page.locator(".viewer-series-button").first
        expect(button).to_be_focused()
        box = button.bounding_box()
        y = box["y"] + box["height"] / 2
        assert _contrast(pixel(box["x"] - 4, y), pixel(box["x"] - 12, y)) >= 3, width  # the dark ring, not clipped


def _second_series(ct_study):
    """A second series of the phantom study: 6 slices of 64 x 64, series 2 "Phantom coronal"."""
    from apps.imaging.models import Series
    from bench.frames_synthetic import store_ct_phantom

    instances = store_ct_phantom(study=ct_study, slices=6, rows=64, columns=64)
    Series.objects.filter(pk=instances[0].series_id).update(series_number=2, series_description="Phantom coronal")
    return instances[0].series, instances


def _open_with_series_lists(page, live_server, user, study, lists) -> None:
    """The viewer of ``study`` as ``user``, its requests for a series' instances through ``lists``
    (a Playwright route handler), once the first image is shown."""
    page.route("**/series/*/instances*", lists)
    _sign_in(page, live_server, user)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": study.public_id}))
    _wait_shown(page, pos=0, quality="diagnostic")


def test_switching_series_loads_the_picked_series_and_ignores_a_late_answer(page, live_server, clinician_a,
                                                                             ct_study, monkeypatch):
    """The page carries the first series' instances only (here a page of 4 at a time); another
    series' are asked for when it is picked, with a loading state meanwhile. An answer that comes
    after the reader has picked another series is not shown; the keyboard and cine work across the
    pages of a long series, and the slider reaches its last image."""
    from apps.viewer import selectors

    monkeypatch.setattr(selectors, "SERIES_PAGE", 4)  # the live server runs in this process
    first_series = ct_study.phantom_instances[0].series
    series, instances = _second_series(ct_study)
    held, hold = [], [True]

    def lists(route):
        if hold[0] and str(series.public_id) in route.request.url:
            held.append(route)
        else:
            route.continue_()

    _open_with_series_lists(page, live_server, clinician_a, ct_study, lists)
    html = page.content()
    assert str(instances[0].public_id) not in html and str(instances[5].public_id) not in html
    viewer, position = page.locator("#viewer"), page.get_by_test_id("viewer-position")
    loading, stage = page.get_by_test_id("viewer-loading"), page.get_by_test_id("viewer-stage")
    buttons = page.locator(".viewer-series-button")
    expect(buttons).to_have_count(2)
    expect(buttons.nth(1)).to_contain_text("Phantom coronal (6)")
    expect(position).to_have_text("1 / 20")

    buttons.nth(1).click()
    expect(loading).to_be_visible()
    expect(loading).to_have_text("Loading images…")
    expect(stage).to_have_attribute("aria-busy", "true")
    expect(position).to_have_text("1 / 6")  # the series' length is known before its instances
    expect(page.get_by_role("img", name="No image")).to_be_attached()  # the first series' image is gone
    assert _centre_of_canvas(page) < 5

    # the first series again before the answer came: the late answer does not replace it
    buttons.nth(0).click()
    expect(page.get_by_role("img", name=_canvas_name(DIAGNOSTIC, 1))).to_be_attached()
    expect(loading).to_be_hidden()
    hold[0] = False
    for route in held:
        route.continue_()
    page.wait_for_timeout(500)
    expect(viewer).to_have_attribute("data-shown-series", str(first_series.public_id))
    expect(position).to_have_text("1 / 20")
    expect(page.get_by_role("img", name=_canvas_name(DIAGNOSTIC, 1))).to_be_attached()

    # the second series: its images, position and details
    buttons.nth(1).click()
    expect(viewer).to_have_attribute("data-shown-series", str(series.public_id))
    _wait_shown(page, pos=0, quality="diagnostic")
    expect(position).to_have_text("1 / 6")
    expect(page.get_by_role("img", name=f"{DIAGNOSTIC} — series 2 · Phantom coronal, image 1 of 6")).to_be_attached()
    expect(page.locator("#meta-size")).to_have_text("64 × 64")
    expect(page.locator("#meta-series")).to_have_text("2 · Phantom coronal")
    stage.focus()
    page.keyboard.press("End")  # past the first page of 4
    _wait_shown(page, pos=5, quality="diagnostic")
    expect(position).to_have_text("6 / 6")
    assert abs(_centre_of_canvas(page) - _gray(body_hu(5), 40, 400)) <= 4
    page.keyboard.press("ArrowUp")
    _wait_shown(page, pos=4, quality="diagnostic")
    expect(position).to_have_text("5 / 6")
    page.keyboard.press(" ")  # cine
    expect(page.get_by_test_id("viewer-cine")).to_have_attribute("aria-pressed", "true")
    expect(viewer).to_have_attribute("data-shown-pos", "0")  # went round
    page.keyboard.press(" ")
    expect(page.get_by_test_id("viewer-cine")).to_have_attribute("aria-pressed", "false")

    # the first series' slider reaches its 20th image, five pages on
    buttons.nth(0).click()
    _wait_shown(page, pos=0, quality="diagnostic")
    page.get_by_test_id("viewer-slice").fill("20")
    _wait_shown(page, pos=19, quality="diagnostic")
    expect(position).to_have_text("20 / 20")
    assert abs(_centre_of_canvas(page) - _gray(body_hu(19), 40, 400)) <= 4
    # one session, recorded when the page opened; none per series
    assert AuditEvent.objects.filter(action="viewer.opened", study_ref=ct_study.public_id).count() == 1


def test_a_series_that_could_not_be_loaded_says_so_and_loads_when_picked_again(page, live_server, clinician_a,
                                                                               ct_study):
    series, _instances = _second_series(ct_study)
    failing = [True]

    def lists(route):
        if failing[0]:
            route.abort()
        else:
            route.continue_()

    _open_with_series_lists(page, live_server, clinician_a, ct_study, lists)
    buttons = page.locator(".viewer-series-button")
    buttons.nth(1).click()
    message = page.get_by_test_id("viewer-message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("The image could not be loaded")
    expect(page.get_by_test_id("viewer-loading")).to_be_hidden()
    expect(buttons.nth(1)).to_be_enabled()  # not stopped: the reader may try again

    failing[0] = False
    buttons.nth(1).click()
    expect(page.locator("#viewer")).to_have_attribute("data-shown-series", str(series.public_id))
    _wait_shown(page, pos=0, quality="diagnostic")
    expect(message).to_be_hidden()
    expect(page.get_by_test_id("viewer-position")).to_have_text("1 / 6")
