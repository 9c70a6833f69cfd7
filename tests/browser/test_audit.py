"""An org admin searches the audit trail on a phone, by keyboard, and finds the denial."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from apps.audit.services import record
from apps.organizations.models import Organization
from tests.browser.test_dashboard import _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_audit_page_on_a_phone_by_keyboard(page, live_server, output_dir):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    org = Organization.objects.get(slug="northwind")
    record(action="case.viewed", organization=org, actor_label="system")
    record(action="access.denied", organization=org, outcome="denied", details={"wanted": "view_images"})
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, live_server.url, "admin@northwind.example")

    page.get_by_role("button", name="Menu").click()  # on a phone the header's links are behind it
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Audit trail of Northwind"))
    page.wait_for_load_state("load")  # the audit page's own load: its styles are applied
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling

    filters = page.get_by_role("button", name="Filters")  # closed: no filter is in use yet
    filters.focus()
    page.keyboard.press("Enter")
    outcome = page.get_by_label("Outcome")
    outcome.focus()
    outcome.select_option("denied")
    for _ in range(12):  # on through the date fields (each has day, month, year stops) to Search
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Search":
            break
    assert page.evaluate("document.activeElement.textContent.trim()") == "Search"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "outcome=denied" in page.url
    rows = page.locator("table.audit-table tbody tr")
    assert rows.count() >= 1
    assert all("Denied" in rows.nth(i).inner_text() for i in range(rows.count()))
    assert "outcome=denied" in page.get_by_role("link", name="Export CSV").get_attribute("href")
    page.screenshot(path=str(output_dir / "audit-phone.png"), full_page=True)
