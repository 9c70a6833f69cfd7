"""An open viewer stops when access ends though its reader asks for no other frame: a revoked share,
an ended tumor board. viewer.js asks on a timer (data-access-check-ms, from
LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS, one second here) whether the reader may still view the
images; refused, it clears the image and the series thumbnails and says, in the reader's language,
that access has ended (that the meeting ended, for a board's), and its "back" link leads to Shared
with me, not to the study that is no longer the reader's (a 404). Also: the Mode under Details of a
lossy-compressed original never says "Diagnostic quality available"."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image
from playwright.sync_api import expect

from apps.organizations.models import Role
from bench.frames_synthetic import store_ct_phantom
from tests.browser.conftest import device_page, signed_in_as
from tests.factories import BoardSessionFactory, CaseFactory, InstanceFactory, SeriesFactory, StudyFactory, member
from tests.viewer.conftest import make_ct_study, make_preview_recipient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHECK_SECONDS = 1
#: the most the viewer may take to stop: the check's interval and its answer, with room for a slow machine
STOPS_WITHIN_MS = 4 * CHECK_SECONDS * 1000


@pytest.fixture(autouse=True)
def _quick_checks(settings):
    settings.LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS = CHECK_SECONDS


def _viewer(study) -> str:
    return reverse("viewer:viewer", kwargs={"study_id": study.public_id})


def _canvas_brightest(page) -> float:
    """The brightest of the canvas's pixels (screenshot) in its lower part, where the phantom's body
    is and neither the label nor a message is drawn over it."""
    shot = page.get_by_test_id("viewer-canvas").screenshot()
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float32)
    h, w = image.shape
    return float(image[int(h * 0.75):int(h * 0.92), w // 4:3 * w // 4].max())


def _frames_asked(page) -> list[str]:
    """Frames asked for from now on, once those still on their way (prefetching) have ended."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/frame" in request.url else None)
    quiet = 0
    for _ in range(100):  # 800 ms without a frame asked for
        seen = len(asked)
        page.wait_for_timeout(100)
        quiet = quiet + 1 if len(asked) == seen else 0
        if quiet >= 8:
            break
    asked.clear()
    return asked


def _access_answers(page) -> list[int]:
    answers: list[int] = []
    page.on("response", lambda response: answers.append(response.status) if "/access" in response.url else None)
    return answers


def _stopped(page, message: str) -> None:
    shown = page.get_by_test_id("viewer-message")
    expect(shown).to_be_visible(timeout=STOPS_WITHIN_MS)
    expect(shown).to_contain_text(message)
    expect(page.locator("#viewer")).not_to_have_attribute("data-shown-pos", "0")
    assert _canvas_brightest(page) < 5  # nothing of the image left on screen
    expect(page.locator("#viewer-series-list img")).to_have_count(0)  # nor in the thumbnails


def _back_leads_to_shared_with_me(page, live_server) -> None:
    """The study is no longer the reader's (its page a 404): "back" leads to Shared with me, which
    opens, and where the ended share is listed."""
    back = page.get_by_test_id("viewer-back")
    shared_with_me = reverse("sharing:shared_with_me")
    expect(back).to_have_attribute("href", shared_with_me)
    with page.expect_navigation() as went:
        back.click()
    assert went.value.status == 200 and page.url == live_server.url + shared_with_me


def test_a_share_revoked_while_the_reader_stays_on_one_image_stops_the_viewer(page, live_server, org_a,
                                                                               clinician_a, output_dir):
    from apps.sharing import services

    study = make_ct_study(org_a, clinician_a)
    reader = make_preview_recipient(org_a, clinician_a, study)
    signed_in_as(page, live_server.url, reader)
    page.clock.install()  # the page's timers on Playwright's clock: the check's tick is run, not waited
    page.goto(live_server.url + _viewer(study))
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-shown-quality", "preview")
    page.get_by_test_id("viewer-stage").focus()
    page.keyboard.press("ArrowDown")  # a second image, and its neighbours prefetched into the cache
    expect(viewer).to_have_attribute("data-shown-pos", "1")
    expect(viewer).to_have_attribute("data-shown-quality", "preview")
    assert _canvas_brightest(page) > 20  # the phantom on screen
    expect(page.locator("#viewer-series-list img")).to_have_count(1)

    asked, answers = _frames_asked(page), _access_answers(page)
    services.grants_revoke(grants=[reader.grant], by=clinician_a, reason="test")
    # the reader does nothing: the timer's check stops the viewer
    page.clock.run_for(CHECK_SECONDS * 1000)  # its next tick
    _stopped(page, "Your access to this study has ended")
    assert page.get_by_test_id("viewer-label").inner_text() == "No image"
    assert asked == [] and answers[-1] in (403, 404)  # stopped by the check, not by a frame
    page.screenshot(path=str(output_dir / "viewer-access-ended.png"))

    # an image the browser holds (the first, shown before) is not shown again: nothing moves
    page.get_by_test_id("viewer-stage").focus()
    for key in ("ArrowUp", "Home"):
        page.keyboard.press(key)
    page.wait_for_timeout(300)
    assert _canvas_brightest(page) < 5
    assert asked == []
    assert page.get_by_test_id("viewer-position").inner_text() == "2 / 20"
    expect(page.get_by_test_id("viewer-back")).to_have_text("Shared with me")
    _back_leads_to_shared_with_me(page, live_server)


def test_the_end_of_a_tumor_board_stops_a_participants_viewer_in_spanish(browser, live_server, org_a, clinician_a,
                                                                         output_dir):
    from apps.cases import services

    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    study = StudyFactory(organization=org_a, case=case, study_description="One-image study")
    store_ct_phantom(study=study, slices=1, rows=64, columns=64)
    participant = member(org_a, Role.EXTERNAL_CONSULTANT, email="board-guest@outside.example")
    board = BoardSessionFactory(organization=org_a, host=clinician_a)
    board.cases.add(case)
    board.participants.add(participant)
    services.board_start(board=board, by=clinician_a)
    with device_page(browser, (768, 1024), "es") as page:
        signed_in_as(page, live_server.url, participant)
        page.clock.install()  # the page's timers on Playwright's clock: the check's tick is run, not waited
        page.goto(live_server.url + _viewer(study))
        expect(page.locator("#viewer")).to_have_attribute("data-shown-pos", "0")
        assert _canvas_brightest(page) > 20
        asked, answers = _frames_asked(page), _access_answers(page)
        services.board_end(board=board, by=clinician_a)
        # the meeting's end is what it says, in the reader's language (the page's text for it),
        # not that a share was revoked or expired
        viewer = page.locator("#viewer")
        board_ended, denied = viewer.get_attribute("data-msg-board-ended"), viewer.get_attribute("data-msg-denied")
        assert board_ended and board_ended != denied
        page.clock.run_for(CHECK_SECONDS * 1000)  # its next tick
        _stopped(page, board_ended)
        assert asked == [] and answers[-1] in (403, 404)
        page.screenshot(path=str(output_dir / "viewer-board-ended-es.png"))
        _back_leads_to_shared_with_me(page, live_server)


def test_a_lossy_original_is_not_said_to_be_of_diagnostic_quality(page, live_server, org_a, clinician_a):
    """The file says Lossy Image Compression = 01 in a lossless transfer syntax: only its frame
    (labelled "lossy") tells; the Mode follows it as the label under the image does."""
    from apps.imaging.blobs import put_blob
    from bench.frames_synthetic import ct_phantom_slice

    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    study = StudyFactory(organization=org_a, case=case, study_description="Lossy NM")
    ds = ct_phantom_slice(0, rows=64, columns=64)
    ds.LossyImageCompression = "01"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    blob = put_blob(buffer, organization=org_a)
    series = SeriesFactory(organization=org_a, study=study, modality="NM")
    InstanceFactory(organization=org_a, series=series, study=study, blob=blob,
                    transfer_syntax_uid="1.2.840.10008.1.2.1",  # lossless by its name
                    rows=64, columns=64, frames=1, size=blob.size, sha256=blob.sha256)
    signed_in_as(page, live_server.url, clinician_a)
    page.goto(live_server.url + _viewer(study))
    expect(page.locator("#viewer")).to_have_attribute("data-shown-quality", "lossy")
    expect(page.get_by_test_id("viewer-label")).to_have_text("Lossy-compressed original - not for diagnostic use")
    mode = page.get_by_test_id("meta-mode")
    expect(mode).to_have_text("Original with lossy compression - not of diagnostic quality")
    expect(mode).to_have_attribute("data-kind", "lossy")
