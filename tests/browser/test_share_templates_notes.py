"""On a phone a share template's card leaves out its Notes when it has none: QA found an empty
"Notas" label on the cards of the templates without notes (a named cell's display won over the
stacked table's rule that hides an empty cell)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import device_page, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_template_without_notes_shows_no_notes_label_on_a_phone(browser, live_server):
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@notes.example", language="es")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    with device_page(browser, (390, 844), "es") as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/cases/{case.public_id}/share/")
        page.wait_for_load_state("load")  # the page's styles are applied
        for key in ("second_opinion", "telehealth", "patient_education"):  # neither MFA nor renewable
            cell = page.get_by_test_id(f"template-notes-{key}")
            expect(cell).to_have_text("")
            expect(cell).to_be_hidden()  # its "Notas" label with it
        notes = page.get_by_test_id("template-notes-consultant")
        expect(notes).to_be_visible()
        assert notes.evaluate("td => getComputedStyle(td, '::before').content") == '"Notas"'
