"""A study's "Renditions and downloads" on a phone (found by QA): at 390x844 the table scrolled
sideways, its Download buttons at x=701-815 (in Spanish 738-854) and the "Not offered: ..." reasons
out of sight. A card a rendition there (.stacked-table, as the lists, 26d2da6): each rendition's
name, label, state and its Download button or the reason it is not offered in view, each under its
column's name; on a desktop the table as before."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import device_page, signed_in_as
from tests.browser.test_list_pages_on_a_phone import ROWS
from tests.factories import CaseFactory, OrganizationFactory, RenditionFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _study_page(language):
    """A clinician's study with its original, lossless copy and preview made; its education image
    not made (the row says why it is not offered: "Not offered")."""
    org = OrganizationFactory(name="Hospital Universitario de Ejemplo", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="renditions.phone@hospital-universitario.example", language=language)
    case = CaseFactory(organization=org, created_by=user, responsible_clinician=user)
    study = StudyFactory(organization=org, case=case, study_description="CT CHEST WITH CONTRAST HIGH RESOLUTION")
    for kind, label in [("original", "diagnostic_original"), ("lossless", "diagnostic_lossless"),
                        ("preview", "preview_lossy")]:
        RenditionFactory(organization=org, study=study, kind=kind, label=label, codec="JPEG 2000 Lossless",
                         files_ready=3, bytes=123_456_789, original_bytes=234_567_890, ratio=0.53)
    return user, f"/studies/{study.public_id}/"


@pytest.mark.parametrize(("viewport", "language"), [((390, 844), "en"), ((390, 844), "es"), ((820, 1180), "es")])
def test_each_renditions_download_or_reason_is_in_view_without_scrolling_sideways(browser, live_server, output_dir,
                                                                                  viewport, language):
    user, path = _study_page(language)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, user)
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")  # the page's styles are applied
        page.screenshot(path=str(output_dir / f"renditions-{width}-{language}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        section = page.get_by_test_id("renditions")
        sizes = section.locator(".table-wrap").evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert sizes[0] <= sizes[1], sizes  # the table's box does not scroll sideways either
        rows = section.locator("table").evaluate(ROWS)
        assert len(rows) == 4, rows
        for row in rows:
            for cell in row:
                assert cell["left"] >= 0 and cell["right"] <= width + 0.5, (cell, row)  # in view
                if not cell["actions"]:
                    # a field under its column's name, shown (the headings themselves are out of sight)
                    assert cell["label"] == cell["head"] and cell["before"] not in ("none", "normal"), cell
        downloads = section.locator("[data-testid^=download-]")
        assert downloads.count() == 3
        reason = section.get_by_test_id("not-offered-education")
        for control in [*(downloads.nth(i) for i in range(3)), reason]:
            control.scroll_into_view_if_needed()
            expect(control).to_be_in_viewport()
            box = control.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (control.inner_text(), box)


def test_the_renditions_are_a_table_on_a_desktop(browser, live_server):
    user, path = _study_page("en")
    with device_page(browser, (1366, 900), "en") as page:
        signed_in_as(page, live_server.url, user)
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        table = page.get_by_test_id("renditions").locator("table")
        assert table.evaluate("t => getComputedStyle(t).display") == "table"
        assert table.locator("td").first.evaluate("c => getComputedStyle(c).display") == "table-cell"
        expect(table.locator("thead th").first).to_be_visible()
        wrap = page.get_by_test_id("renditions").locator(".table-wrap")
        sizes = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert sizes[0] <= sizes[1], sizes
