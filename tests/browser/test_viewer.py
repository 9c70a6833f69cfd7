"""Must-show 1: the viewer in Chromium on a 20-slice CT phantom: scroll to a slice, apply the lung
preset, and read from the screenshot's pixels that the slice and then the window changed. Also:
a revoked grant stops an open viewer at its next frame; the page fits a phone; closing is audited."""

from __future__ import annotations

import io

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
    # the image is named by its quality label and position (role img)
    expect(page.get_by_role("img", name="Diagnostic original (lossless), 13 / 20")).to_be_visible()

    # window, level and pan from the keyboard, for any modality (not only the CT presets)
    page.get_by_test_id("viewer-stage").focus()
    page.keyboard.press("w")  # narrower: 1500 * 0.8
    _wait_shown(page, pos=12, quality="diagnostic", window="-600/1200")
    page.keyboard.press("Shift+L")  # level up by a twentieth of the window
    _wait_shown(page, pos=12, quality="diagnostic", window="-540/1200")
    before = page.get_by_test_id("viewer-canvas").screenshot()
    for _ in range(3):
        page.keyboard.press("Shift+ArrowRight")
    moved = page.get_by_test_id("viewer-canvas").screenshot()
    assert np.abs(_gray_image(before) - _gray_image(moved)).mean() > 5  # the image moved
    assert page.get_by_test_id("viewer-position").inner_text() == "13 / 20"  # not the next slice

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
    expect(page.get_by_test_id("viewer-slice")).to_be_disabled()  # the controls say it, not only faded
    assert _centre_of_canvas(page, at=0.88) < 5  # nothing left on screen
