"""Printed pages other than the recovery codes: the print rules in lightbox.css apply to every
page, and on paper nothing scrolls sideways. A table wider than the page (the audit trail's eight
columns) was printed cut at the page's edge inside its .table-wrap: the case, study and IP address
of each event were not on paper. Printed, a table is whole, its cells wrapping. And the footer's
time zone is printed: a printed case's times had no zone. The case page's empty Attach and Add
note forms are left out of print."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from playwright.sync_api import expect

from apps.audit.services import record
from apps.organizations.models import Role
from tests.browser.conftest import device_context, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: each table in the page's content whose right edge, or whose .table-wrap's content, goes past
#: the content's own right edge (what paper cuts off)
CUT_TABLES = """() => {
  const right = document.querySelector('main').getBoundingClientRect().right;
  return [...document.querySelectorAll('main table')].filter(t => {
    const wrap = t.closest('.table-wrap');
    return t.getBoundingClientRect().right > right + 1 || (wrap && wrap.scrollWidth > wrap.clientWidth + 1);
  }).map(t => t.className || t.dataset.testid || 'table');
}"""


#: the column headings broken inside a word: more lines than words ("Fec" / "ha")
BROKEN_HEADINGS = """() => [...document.querySelectorAll('main th')].filter(th => {
  const words = th.innerText.trim().split(/\\s+/).filter(Boolean).length;
  const range = document.createRange(); range.selectNodeContents(th);
  const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
  return words && lines > words;
}).map(th => th.innerText)"""


@pytest.mark.parametrize("language", ["en", "es"])
def test_printed_tables_are_whole(browser, live_server, output_dir, language):
    """720 px: the printable width of an A4 or Letter page, where a phone or a tablet lays out
    what it prints; in Spanish too (longer words)."""
    width = 720
    org = OrganizationFactory(name="Hospital Universitario de Ejemplo", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="administrator.of.records@hospital-universitario.example",
                   language=language)
    case = CaseFactory(organization=org, created_by=admin, responsible_clinician=admin, title="Chest CT")
    study = StudyFactory(organization=org, case=case, study_description="CT CHEST WITH CONTRAST HIGH RESOLUTION")
    request = RequestFactory().get("/", REMOTE_ADDR="2001:db8:85a3:8d3:1319:8a2e:370:7348")
    request.user = admin
    for _ in range(3):
        record(action="study.viewed", organization=org, actor=admin, target=study, case=case, study=study,
               request=request)
    context = device_context(browser, width, 1000, language=language)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, admin)
        for path in ("/org/audit/", f"/cases/{case.public_id}/"):
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("load")
            page.emulate_media(media="print")
            expect(page.locator("header.site-header")).to_be_hidden()  # the print rules apply
            assert page.evaluate(CUT_TABLES) == [], path
            assert page.evaluate(BROKEN_HEADINGS) == [], path
            # the times on paper say their zone, as the page's footer does on screen
            expect(page.get_by_test_id("time-zone")).to_be_visible()
            expect(page.locator("footer.site-footer p").first).to_be_hidden()  # the tagline is not printed
            page.screenshot(path=str(output_dir / f"print-{path.strip('/').split('/')[-1]}-{language}.png"),
                            full_page=True)
            page.emulate_media(media="screen")
        page.goto(f"{live_server.url}/org/audit/")
        page.emulate_media(media="print")
        ip = page.get_by_role("cell", name="2001:db8:85a3:8d3:1319:8a2e:370:7348").first
        expect(ip).to_be_visible()
        assert ip.bounding_box()["x"] + ip.bounding_box()["width"] <= width
    finally:
        context.close()


def test_case_page_forms_are_not_printed(browser, live_server):
    """The case page's empty Attach and Add note forms are for the screen: on paper they were a
    file box, a kind list and an empty note box under the case (.no-print, as on the recovery
    codes page); the case, its studies and its notes are printed."""
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@print-forms.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    StudyFactory(organization=org, case=case)
    context = device_context(browser, 720, 1000)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/cases/{case.public_id}/")
        page.wait_for_load_state("load")
        forms = page.locator("main form.attachment-form, main form.note-form")
        expect(forms).to_have_count(2)
        for i in range(2):
            expect(forms.nth(i)).to_be_visible()
        page.emulate_media(media="print")
        expect(page.locator("header.site-header")).to_be_hidden()  # the print rules apply
        for i in range(2):
            expect(forms.nth(i)).to_be_hidden()
        expect(page.get_by_test_id("clinical-question")).to_be_visible()  # the case itself is printed
        expect(page.locator("#notes-heading")).to_be_visible()
    finally:
        context.close()
