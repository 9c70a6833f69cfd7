"""The audit trail on a desktop (1366x768, a hospital's usual screen): its eight columns needed
1425 px and its table scrolled sideways in a 1120 px box, the case, study and IP address columns
out of sight at the end, a faint shadow the only hint. It fits now, every cell in view: long values
(an e-mail address, an action's code, an id, an IPv6 address) wrap in their column, ids and codes
only after a separator; it stays a table there, and a card an event on a phone or a tablet
(tests/browser/test_list_pages_on_a_phone.py)."""

from __future__ import annotations

import uuid

import pytest
from django.test import RequestFactory
from playwright.sync_api import expect

from apps.audit import actions
from apps.audit.services import record
from apps.organizations.models import Role
from tests.browser.conftest import _only_local, signed_in_as
from tests.browser.test_audit import ID_LINES
from tests.factories import CaseFactory, OrganizationFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IPV6 = "2001:db8:85a3:8d3:1319:8a2e:370:7348"

#: each cell's box, against the table's box, with its text
CELLS = """wrap => [...wrap.querySelectorAll('tbody td')].map(td => {
  const box = td.getBoundingClientRect(), outer = wrap.getBoundingClientRect();
  return {left: box.left, right: box.right, outerLeft: outer.left, outerRight: outer.right,
          text: td.innerText.trim().slice(0, 60)};
})"""


def _trail(language: str):
    """An organization's trail of realistic long values: a long e-mail address, a share link's
    actor, long action codes with what a download held, objects named by whole ids, IPv6."""
    org = OrganizationFactory(name="Hospital Universitario de Ejemplo", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="administrator.of.records@hospital-universitario.example",
                   full_name="Avery Administrator of Records", language=language)
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="a.rather.long.address@consultants-northwind.example")
    case = CaseFactory(organization=org, created_by=admin, responsible_clinician=admin, title="Chest CT")
    study = StudyFactory(organization=org, case=case)
    request = RequestFactory().get("/", REMOTE_ADDR=IPV6)
    request.user = admin
    record(action=actions.DOWNLOAD_COMPLETED, organization=org, actor=consultant, target=study, case=case,
           study=study, request=request,
           details={"scope": "case", "rendition": "lossless", "lossy_source": "all", "grant": str(uuid.uuid4()),
                    "total_bytes": 10, "range_start": 0, "range_end": 9, "bytes_sent": 10, "completed": True})
    record(action=actions.SHARE_LINK_SECOND_FACTOR_FAILED, organization=org, actor_label=f"link:{uuid.uuid4()}",
           target=case, case=case, outcome="denied", request=request)
    record(action=actions.GRANT_CREATED, organization=org, actor=admin, target=consultant, case=case, study=study,
           request=request, details={"source": "original_request"})
    record(action=actions.AUTH_MFA_RECOVERY_CODES_RENEWED, organization=org, actor=admin, target=admin,
           request=request)
    return admin


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_audit_table_fits_a_desktop_screen(browser, live_server, output_dir, language):
    admin = _trail(language)
    context = browser.new_context(viewport={"width": 1366, "height": 768},
                                  locale="es-ES" if language == "es" else "en-US")
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/org/audit/")
        page.wait_for_load_state("load")  # the page's styles are applied
        page.screenshot(path=str(output_dir / f"audit-desktop-1366-{language}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # the page
        wrap = page.locator(".table-wrap").first
        sizes = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert sizes[0] <= sizes[1], sizes  # nor the table's box: nothing out of sight at its end
        for cell in wrap.evaluate(CELLS):
            assert cell["left"] >= cell["outerLeft"] - 0.5 and cell["right"] <= cell["outerRight"] + 0.5, cell
        # still a table, its headings shown (a card an event only below 1200 px)
        table = page.locator("table.audit-table")
        assert table.evaluate("t => getComputedStyle(t).display") == "table"
        expect(table.locator("thead th").first).to_be_visible()
        assert table.locator("tbody tr").count() >= 4  # and the sign-in of the test's session
        # ids and codes whole, broken only after a separator, two lines at most; a case's or study's
        # link one line
        for found in page.evaluate(ID_LINES):
            assert found["lines"] <= (1 if found["kind"] == "mono" else 2), found
            assert set(found["before"]) <= set("-._:"), found
    finally:
        context.close()
