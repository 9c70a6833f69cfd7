"""Shared with me on a phone: a card a share, each field under its column's name, its State,
Expires and Request the original DICOM (or the request's decision) in view, nothing scrolled
sideways (found by QA: at 390 px, an external consultant in Spanish, the table scrolled sideways
and those were out of sight). The same mechanism as My shares and the lists (.stacked-table);
at 1366 px the table it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import device_page, signed_in_as
from tests.browser.test_list_pages_on_a_phone import ROWS
from tests.factories import CaseFactory, GrantFactory, OrganizationFactory, OriginalRequestFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REQUEST = {"en": "Request the original DICOM", "es": "Solicitar el DICOM original"}


def _received(language):
    org = OrganizationFactory(name="Hospital Universitario de Ejemplo", mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN, email="owner.with.a.long.name@hospital-universitario.example",
                   full_name="Dra. Owner With A Rather Long Name")
    reader = member(org, Role.EXTERNAL_CONSULTANT, email="reader@consultants-northwind.example", language=language)
    preview = {"permissions": ["view", "download_preview"], "renditions": ["preview"], "created_by": owner,
               "organization": org, "grantee": reader, "use_case": "consultant"}
    asked = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner,
                        title="Chest CT - nodule follow-up with a long title")
    GrantFactory(case=asked, **preview)
    waiting = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, title="MRI brain")
    OriginalRequestFactory(organization=org, grant=GrantFactory(case=waiting, **preview), status="pending")
    ended = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, title="CT abdomen")
    GrantFactory(case=ended, starts_at=timezone.now() - timedelta(days=3),
                 expires_at=timezone.now() - timedelta(days=1), **preview)
    return reader


@pytest.mark.parametrize(("viewport", "language"), [((390, 844), "es"), ((390, 844), "en"), ((820, 1180), "es")])
def test_shared_with_me_is_a_card_a_share_with_its_state_expiry_and_action_in_view(browser, live_server, output_dir,
                                                                                  viewport, language):
    reader = _received(language)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, reader)
        page.goto(f"{live_server.url}/sharing/received/")
        page.wait_for_load_state("load")
        page.screenshot(path=str(output_dir / f"shared-with-me-cards-{width}-{language}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        wrap = page.locator(".table-wrap").first
        sizes = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert sizes[0] <= sizes[1], sizes  # the table's box does not scroll sideways either
        table = page.get_by_test_id("shared-with-me")
        rows = table.evaluate(ROWS)
        assert len(rows) == 3
        for row in rows:
            for cell in row:
                assert cell["left"] >= 0 and cell["right"] <= width + 0.5, (cell, row)  # in view
                if cell["actions"] or not cell["text"]:
                    continue
                assert cell["label"] == cell["head"] and cell["before"] not in ("none", "normal"), cell
        # the action, and the waiting request's note, within the screen's width
        for control in (page.get_by_test_id("request-original"), page.get_by_test_id("original-request-pending")):
            expect(control).to_be_visible()
            control.scroll_into_view_if_needed()
            box = control.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        expect(page.get_by_test_id("request-original")).to_have_text(REQUEST[language])


def test_shared_with_me_is_a_table_on_a_desktop(browser, live_server):
    reader = _received("en")
    with device_page(browser, (1366, 900), "en") as page:
        signed_in_as(page, live_server.url, reader)
        page.goto(f"{live_server.url}/sharing/received/")
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        table = page.get_by_test_id("shared-with-me")
        assert table.evaluate("t => getComputedStyle(t).display") == "table"
        expect(table.locator("thead th").first).to_be_visible()
