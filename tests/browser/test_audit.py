"""An org admin searches the audit trail on a phone, by keyboard, and finds the denial."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from playwright.sync_api import expect

from apps.audit import actions
from apps.audit.services import record
from apps.organizations.models import Organization, Role
from tests.browser.conftest import PHONE_ES_TABLET_EN, device_page, signed_in_as
from tests.browser.test_dashboard import _sign_in
from tests.factories import CaseFactory, OrganizationFactory, StudyFactory, member

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
    # the export buttons send the search shown (a POST form, its fields hidden)
    expect(page.get_by_role("button", name="Export CSV")).to_be_visible()
    assert page.locator(".audit-exports input[name=outcome]").get_attribute("value") == "denied"
    page.screenshot(path=str(output_dir / "audit-phone.png"), full_page=True)


#: each id, action code and case or study link in the audit table: its text, its number of lines
#: and the character before each line break
ID_LINES = """() => [...document.querySelectorAll(
    '.audit-table .audit-id, .audit-table .audit-code, .audit-table td a.mono')].map(el => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const chars = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
      chars.push([node.data[i], Math.round(range.getBoundingClientRect().top)]);
    }
  }
  const before = chars.slice(1).flatMap(([, top], i) => top > chars[i][1] + 2 ? [chars[i][0]] : []);
  return {kind: el.className, text: el.textContent, lines: before.length + 1, before};
})"""


@pytest.mark.parametrize("viewport", [(390, 844), (820, 1180)], ids=["phone", "tablet"])
@pytest.mark.parametrize("language", ["en", "es"])
def test_ids_and_action_codes_read_on_a_phone_and_a_tablet(browser, live_server, output_dir, viewport, language):
    """A security officer on a tablet has no hover: each event's action code (what the search and
    the exports use) is shown under its name, printed too. Squeezed into the narrow columns of a
    table wider than the screen, an id broke anywhere: a case's "b6ea2368…" ran over three lines,
    an object's id inside its groups. Each id now breaks only after a separator, in two lines at
    most; a case's or study's short id is one line; the page itself never scrolls sideways."""
    org = OrganizationFactory(name="Hospital Universitario de Ejemplo", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="administrator.of.records@hospital-universitario.example",
                   language=language)
    case = CaseFactory(organization=org, created_by=admin, responsible_clinician=admin, title="Chest CT")
    study = StudyFactory(organization=org, case=case)
    request = RequestFactory().get("/", REMOTE_ADDR="2001:db8:85a3:8d3:1319:8a2e:370:7348")
    request.user = admin
    record(action=actions.STUDY_VIEWED, organization=org, actor=admin, target=study, case=case, study=study,
           request=request)
    record(action=actions.SHARE_LINK_SECOND_FACTOR_FAILED, organization=org, actor_label=f"link:{uuid.uuid4()}",
           target=case, case=case, outcome="denied", request=request)
    record(action=actions.AUTH_MFA_RECOVERY_CODES_RENEWED, organization=org, actor=admin, target=admin)
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/org/audit/")
        code = page.locator(".audit-table .audit-code", has_text=actions.SHARE_LINK_SECOND_FACTOR_FAILED)
        expect(code).to_be_visible()
        page.wait_for_load_state("load")  # the page's styles are applied
        page.screenshot(path=str(output_dir / f"audit-ids-{viewport[0]}-{language}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]  # no sideways page
        found = page.evaluate(ID_LINES)
        assert {f["text"] for f in found} >= {str(case.public_id), str(study.public_id), str(admin.public_id),
                                             "2001:db8:85a3:8d3:1319:8a2e:370:7348", str(case.public_id)[:8] + "…",
                                             actions.SHARE_LINK_SECOND_FACTOR_FAILED}
        for f in found:
            assert f["lines"] <= (1 if f["kind"] == "mono" else 2), f  # a case's or study's link: one line
            assert set(f["before"]) <= set("-._:"), f  # broken only after a separator
        page.emulate_media(media="print")
        expect(page.locator("header.site-header")).to_be_hidden()  # the print rules apply
        expect(code).to_be_visible()  # on paper as well
        page.emulate_media(media="screen")
        page.locator(".audit-table td a.mono").first.click()  # a case's short id: its events
        expect(page.locator("#id_case")).to_have_value(str(case.public_id))  # the id whole, to copy
        expect(page.locator("#id_case")).to_be_visible()


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_a_cases_recent_access_shows_a_share_links_id_whole_on_a_phone_and_a_tablet(browser, live_server,
                                                                                    viewport, language):
    """A case's Recent access cut a share link's id to 12 characters, so a security officer could
    not match it with the audit page's. It is now whole and broken as the audit page breaks it
    (``id_breaks``): two lines at most, only after a separator; the page does not scroll sideways."""
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@recent-access.example", language=language)
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    link_id = str(uuid.uuid4())
    record(action=actions.GRANT_OPENED, organization=org, actor_label=f"link:{link_id}", target=case, case=case)
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(live_server.url + reverse("cases:case_detail", kwargs={"case_id": case.public_id}))
        expect(page.locator("#history .audit-id")).to_have_text(link_id)
        page.wait_for_load_state("load")  # the page's styles are applied
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
        [found] = page.evaluate(ID_LINES)
        assert found["text"] == link_id and found["lines"] <= 2, found
        assert set(found["before"]) <= set("-"), found
