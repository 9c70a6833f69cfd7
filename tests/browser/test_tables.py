"""A table wider than a phone scrolls sideways inside its frame; a shadow on the edge that hides
columns says so. Without it, "My shares" on a phone showed two columns (case, recipient) and
looked complete: its state, expiry and Revoke/Extend buttons were out of sight. (My shares and
Shared with me are a card a share there now, test_next_step_links, test_shared_with_me_cards, and
so are the share page's table of templates, test_share_form_kinds, and a case's studies,
test_case_page_cards; a study's de-identified exports still scroll.)"""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from PIL import Image

from apps.organizations.models import Role
from tests.browser.conftest import _only_local, signed_in_as
from tests.factories import (
    CaseFactory,
    DeidExportFactory,
    OrganizationFactory,
    RenditionFactory,
    StudyFactory,
    member,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


#: the frame of a study's de-identified exports (a table that scrolls sideways on a phone)
WRAP = ".table-wrap:has([data-testid='deid-export'])"


def _edge_shade(page, side: str, inset: int = 1) -> int:
    """The darkest grey level in a body cell's row, at the given edge of the table's frame (``inset``
    pixels in from it)."""
    wrap = page.locator(WRAP)
    image = Image.open(io.BytesIO(wrap.screenshot())).convert("L")
    cell = wrap.locator("tbody tr").first.bounding_box()
    frame = wrap.bounding_box()
    y = int(cell["y"] - frame["y"] + cell["height"] / 2)
    x = inset if side == "left" else image.width - 1 - inset
    return min(image.getpixel((x, yy)) for yy in range(y - 3, y + 4))


def _darkest_shadow(page) -> int:
    """The darkest grey level of the right edge's shadow alone (the table hidden, its place kept)."""
    wrap = page.locator(WRAP)
    wrap.evaluate("w => { w.firstElementChild.style.visibility = 'hidden'; }")
    image = Image.open(io.BytesIO(wrap.screenshot())).convert("L")
    wrap.evaluate("w => { w.firstElementChild.style.visibility = ''; }")
    return min(image.getpixel((image.width - 2, y)) for y in range(image.height))


def test_a_table_wider_than_a_phone_shows_a_shadow_where_columns_are_hidden(browser, live_server, output_dir):
    org = OrganizationFactory(mfa_required_roles=[])
    owner = member(org, Role.RADIOLOGIST, email="radiologist@tables.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner,
                       title="Chest CT - second opinion")
    study = StudyFactory(organization=org, case=case, study_description="CT chest")
    DeidExportFactory(organization=org, study=study, created_by=owner)
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True)
    context.route("**/*", _only_local)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, owner)
        page.goto(f"{live_server.url}{reverse('deid:study_exports', kwargs={'study_id': study.public_id})}")
        wrap = page.locator(WRAP)
        wrap.scroll_into_view_if_needed()
        assert wrap.evaluate("w => w.scrollWidth > w.clientWidth")  # the columns do not fit: it scrolls
        page.screenshot(path=str(output_dir / "shared-with-me-phone-shadow.png"))
        assert _edge_shade(page, "right") < 240  # more to the right: a shadow there
        assert _darkest_shadow(page) >= 199  # light enough for any text over it (a link 4.5:1)
        # nothing hidden on the left yet: its edge is the row's own, no darker
        assert _edge_shade(page, "left") >= _edge_shade(page, "left", inset=6) - 2
        wrap.evaluate("w => { w.scrollLeft = w.scrollWidth; }")
        page.wait_for_timeout(100)
        assert _edge_shade(page, "left") < 240
        assert _edge_shade(page, "right") > 250
    finally:
        context.close()


def test_a_cases_studies_fit_a_tablet_each_label_once_diagnostic_first(browser, live_server, output_dir):
    """The longest label wraps inside its badge instead of pushing the table wider than a tablet;
    a lossy source's original and lossless copy each say what they are, neither diagnostic."""
    org = OrganizationFactory(mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN)
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner,
                       title="Chest CT - second opinion")
    lossy = StudyFactory(organization=org, case=case, study_description="Whole body bone scan")
    for kind in ("education", "original", "preview", "lossless"):
        label = {"education": "education_low_res", "preview": "preview_lossy",
                 "lossless": "lossless_of_lossy"}.get(kind, "lossy_source")
        RenditionFactory(organization=org, study=lossy, kind=kind, label=label)
    clean = StudyFactory(organization=org, case=case, study_description="CT chest")
    for kind, label in (("education", "education_low_res"), ("preview", "preview_lossy"),
                        ("original", "diagnostic_original"), ("lossless", "diagnostic_lossless")):
        RenditionFactory(organization=org, study=clean, kind=kind, label=label)
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="en-US")
    context.route("**/*", _only_local)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, owner)
        page.goto(f"{live_server.url}/cases/{case.public_id}/")
        rows = page.get_by_test_id("study")
        labels = {rows.nth(i).locator("td").first.inner_text().split("\n")[0]:
                  rows.nth(i).get_by_test_id("rendition-badge").evaluate_all(
                      "bs => bs.map(b => b.dataset.label)") for i in range(rows.count())}
        assert labels == {
            "Whole body bone scan": ["lossy_source", "lossless_of_lossy", "preview_lossy", "education_low_res"],
            "CT chest": ["diagnostic_original", "diagnostic_lossless", "preview_lossy", "education_low_res"],
        }
        wrap = page.locator(".table-wrap").first
        page.screenshot(path=str(output_dir / "case-studies-tablet.png"), full_page=True)
        assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth")  # nothing hidden sideways
    finally:
        context.close()
