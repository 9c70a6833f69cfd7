"""The members, cases, tumor boards and audit lists on a phone and a tablet: every row's fields and
its actions in view, nothing scrolled sideways, each field under its column's name (found by QA: at
390 px the members' Edit was at x=685, the cases' Status and Opened and the boards' State were out
of sight at the end of a table scrolled sideways, a faint shadow the only hint; the audit trail
scrolled sideways on a tablet too). A card a row there (.stacked-table, as My shares and the
invitations); on a desktop the tables as before."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from playwright.sync_api import expect

from apps.audit import actions
from apps.audit.services import record
from apps.organizations.models import Role
from tests.browser.conftest import device_page, signed_in_as
from tests.factories import BoardSessionFactory, CaseFactory, OrganizationFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_EMAIL = "a.rather.long.address@consultants-northwind.example"

#: each row of the page's table: its cells' boxes and the name its column's heading gives it
ROWS = """table => {
  const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
  return [...table.querySelectorAll('tbody tr')].map(tr => [...tr.children].map((td, i) => {
    const box = td.getBoundingClientRect();
    return {head: heads[i], label: td.dataset.label || null, actions: td.classList.contains('actions'),
            before: getComputedStyle(td, '::before').content, left: box.left, right: box.right,
            text: td.innerText.trim()};
  }));
}"""


def _page_of(who, name):
    """What each list needs: a user, the page's path and the table's controls (links, buttons)."""
    org = OrganizationFactory(name="Hospital Universitario de Ejemplo", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="administrator.of.records@hospital-universitario.example",
                   full_name="Avery Administrator of Records")
    admin.language = who
    admin.save(update_fields=["language"])
    member(org, Role.EXTERNAL_CONSULTANT, email=LONG_EMAIL, full_name="Emery Consultant (Northwind)")
    case = CaseFactory(organization=org, created_by=admin, responsible_clinician=admin,
                       title="Chest CT with a rather long title for the table", service_line="Thoracic oncology")
    if name == "members":
        return admin, "/org/members/", "td a"
    if name == "cases":
        CaseFactory(organization=org, created_by=admin, responsible_clinician=admin, title="Brain MRI")
        return admin, "/cases/", "td a"
    if name == "boards":
        board = BoardSessionFactory(organization=org, host=admin, title="Thoracic oncology tumor board of Tuesday")
        board.cases.add(case)
        return admin, "/boards/", "td a"
    study = StudyFactory(organization=org, case=case)
    request = RequestFactory().get("/", REMOTE_ADDR="2001:db8:85a3:8d3:1319:8a2e:370:7348")
    request.user = admin
    record(action=actions.STUDY_VIEWED, organization=org, actor=admin, target=study, case=case, study=study,
           request=request)
    record(action=actions.AUTH_MFA_RECOVERY_CODES_RENEWED, organization=org, actor=admin, target=admin)
    return admin, "/org/audit/", "td a"


@pytest.mark.parametrize(("name", "viewport", "language"), [
    ("members", (390, 844), "en"), ("members", (390, 844), "es"), ("cases", (390, 844), "en"),
    ("cases", (390, 844), "es"), ("boards", (390, 844), "en"), ("audit", (390, 844), "en"),
    ("audit", (390, 844), "es"), ("audit", (820, 1180), "en"), ("audit", (1180, 820), "es"),
])
def test_a_list_shows_each_rows_fields_and_actions_without_scrolling_sideways(browser, live_server, output_dir,
                                                                             name, viewport, language):
    user, path, controls = _page_of(language, name)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, user)
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")  # the page's styles are applied
        page.screenshot(path=str(output_dir / f"list-{name}-{width}-{language}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        wrap = page.locator(".table-wrap").first
        sizes = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert sizes[0] <= sizes[1], sizes  # the table's box does not scroll sideways either
        table = page.locator("main table").first
        rows = table.evaluate(ROWS)
        assert rows, path
        for row in rows:
            for cell in row:
                assert cell["left"] >= 0 and cell["right"] <= width + 0.5, (cell, row)  # in view
                if cell["actions"] or not cell["text"]:
                    continue
                # a field under its column's name, shown (the headings themselves are out of sight)
                assert cell["label"] == cell["head"] and cell["before"] not in ("none", "normal"), cell
        links = table.locator(controls)
        # a link a row (the member's Edit, the case's or board's title); the audit trail's to the
        # study.viewed event's case and study
        assert links.count() == (2 if name == "audit" else len(rows)), links.count()
        for i in range(links.count()):
            links.nth(i).scroll_into_view_if_needed()
            box = links.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (links.nth(i).inner_text(), box)
        if name == "members":
            expect(table.get_by_role("link", name="Edit" if language == "en" else "Editar")).to_have_count(len(rows))


@pytest.mark.parametrize("name", ["members", "cases", "boards", "audit"])
def test_a_list_is_a_table_on_a_desktop(browser, live_server, name):
    """At 1366 px each list stays a table, its headings shown, nothing scrolled sideways (the audit
    trail's eight columns too: tests/browser/test_audit_desktop.py)."""
    user, path, _controls = _page_of("en", name)
    with device_page(browser, (1366, 900), "en") as page:
        signed_in_as(page, live_server.url, user)
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        table = page.locator("main table").first
        assert table.evaluate("t => getComputedStyle(t).display") == "table"
        assert table.locator("td").first.evaluate("c => getComputedStyle(c).display") == "table-cell"
        expect(table.locator("thead th").first).to_be_visible()
        wrap = page.locator(".table-wrap").first
        sizes = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert sizes[0] <= sizes[1], sizes
