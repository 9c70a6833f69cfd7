"""Closing a case ends, for good, the access of everyone it was shared with. On the case page the
Close case control sits beside Edit: one tap on a tablet or a phone closed the case at once. It
now opens a page that names whose access ends, and only its button closes; Cancel leaves the
case as it was."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.cases.models import Case
from apps.organizations.models import Role
from apps.sharing.models import Grant
from tests.browser.conftest import device_context, signed_in_as
from tests.factories import CaseFactory, GrantFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = {
    "en": {"close": "Close case", "confirm": "Close this case", "cancel": "Cancel"},
    "es": {"close": "Cerrar caso", "confirm": "Cerrar este caso", "cancel": "Cancelar"},
}


@pytest.mark.parametrize(("viewport", "language"), [((768, 1024), "en"), ((390, 844), "es")])
def test_closing_a_case_asks_first_and_names_whose_access_ends(browser, live_server, output_dir, viewport,
                                                                 language):
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@close.example", language=language)
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@close.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician,
                       title="Chest CT - second opinion")
    grant = GrantFactory(organization=org, case=case, grantee=consultant, created_by=clinician)
    width, height = viewport
    context = device_context(browser, width, height, language=language)
    page = context.new_page()
    words = TEXT[language]
    try:
        signed_in_as(page, live_server.url, clinician)
        case_url = f"{live_server.url}/cases/{case.public_id}/"
        page.goto(case_url)
        page.get_by_role("link", name=words["close"]).tap()
        # a tap asks; it does not close
        ends = page.get_by_test_id("close-ends")
        expect(ends).to_contain_text(consultant.email)
        assert Case.objects.get(pk=case.pk).is_open
        assert Grant.objects.get(pk=grant.pk).revoked_at is None
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(output_dir / f"case-close-{language}-{width}.png"), full_page=True)
        # Cancel goes back to the case, still open
        page.get_by_role("link", name=words["cancel"]).tap()
        page.wait_for_url(case_url)
        assert Case.objects.get(pk=case.pk).is_open
        # the confirmation's own button closes it and ends the consultant's access
        page.get_by_role("link", name=words["close"]).tap()
        page.get_by_role("button", name=words["confirm"]).tap()
        page.wait_for_url(case_url)
        expect(page.get_by_test_id("case-status")).not_to_have_text("Open")
        assert not Case.objects.get(pk=case.pk).is_open
        assert Grant.objects.get(pk=grant.pk).revoked_at is not None
    finally:
        context.close()
