"""A study's "Renditions and downloads" as cards on a tablet and a phone: no field's name (its
data-label, drawn by the card's ::before) lies under the Download button or another field (found
by QA: at 820 px in English "Ratio to original" wrapped to two lines, ran out of its cell, and the
Download button of the next sat on the word "original"). The labels' boxes are the browser's own
(the DevTools protocol's box of each ::before), so whatever draws them, what is measured is what
is seen."""

from __future__ import annotations

import pytest

from apps.organizations.models import Role
from tests.browser.conftest import device_page, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, RenditionFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _study_page(language):
    """A clinician's study with its original, lossless copy and preview made (three Download
    buttons), each with a size and a ratio; its education image not made ("Not offered")."""
    org = OrganizationFactory(name="Hospital Universitario de Ejemplo", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="renditions.cards@hospital-universitario.example", language=language)
    case = CaseFactory(organization=org, created_by=user, responsible_clinician=user)
    study = StudyFactory(organization=org, case=case, study_description="CT CHEST WITH CONTRAST HIGH RESOLUTION")
    for kind, label in [("original", "diagnostic_original"), ("lossless", "diagnostic_lossless"),
                        ("preview", "preview_lossy")]:
        RenditionFactory(organization=org, study=study, kind=kind, label=label, codec="JPEG 2000 Lossless",
                         files_ready=3, bytes=123_456_789, original_bytes=234_567_890, ratio=0.53)
    return user, f"/studies/{study.public_id}/"


def _box(cdp, node_id: int) -> dict:
    """The border box of the DOM node ``node_id`` (an element or a pseudo-element) in the
    viewport's CSS pixels."""
    quad = cdp.send("DOM.getBoxModel", {"nodeId": node_id})["model"]["border"]
    xs, ys = quad[0::2], quad[1::2]
    return {"left": min(xs), "top": min(ys), "right": max(xs), "bottom": max(ys)}


def _boxes(page, selector: str, *, pseudo: str | None = None) -> list[dict]:
    """The boxes of the elements of ``selector`` (or of their ``pseudo``-element, "before"), with
    their text."""
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        out = []
        for node_id in cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})["nodeIds"]:
            node = cdp.send("DOM.describeNode", {"nodeId": node_id, "depth": 1})["node"]
            attributes = dict(zip(node.get("attributes", [])[0::2], node.get("attributes", [])[1::2], strict=True))
            target = node_id
            if pseudo is not None:
                (target,) = [p["nodeId"] for p in node.get("pseudoElements", []) if p.get("pseudoType") == pseudo]
            out.append({**_box(cdp, target), "text": attributes.get("data-label") or attributes.get("data-testid")})
        return out
    finally:
        cdp.detach()


def _intersect(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


@pytest.mark.parametrize("viewport", [(820, 1180), (390, 844)])
@pytest.mark.parametrize("language", ["en", "es"])
def test_no_download_button_lies_on_a_fields_name(browser, live_server, output_dir, viewport, language):
    user, path = _study_page(language)
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, user)
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")  # the page's styles are applied
        page.screenshot(path=str(output_dir / f"renditions-cards-{viewport[0]}-{language}.png"), full_page=True)
        labels = _boxes(page, ".renditions tbody td[data-label]", pseudo="before")
        buttons = _boxes(page, ".renditions tbody [data-testid^=download-]")
        cells = _boxes(page, ".renditions tbody td")
    assert len(buttons) == 3 and len(labels) == 4 * 5, (buttons, labels)
    assert all(label["bottom"] > label["top"] for label in labels)  # drawn, each a box of its own
    for button in buttons:
        for label in labels:
            assert not _intersect(button, label), (button, label)
    # and each name within its own field's cell, so no other field's value lies under it either
    for label in labels:
        assert any(cell["top"] <= label["top"] and label["bottom"] <= cell["bottom"] + 0.5
                   and cell["left"] <= label["left"] and label["right"] <= cell["right"] + 0.5 for cell in cells), label
