"""Revoke on "My shares" asks first: one tap on a tablet (a mis-tap beside Extend) took a colleague's
access away at once (found by QA). The row's Revoke opens a page naming whose access to which case
ends, whose own button revokes; Cancel goes back to the row, the share as it was. On a phone and a
tablet, and without JavaScript."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing.models import Grant
from tests.browser.conftest import PHONE_ES_TABLET_EN, device_page, signed_in_as
from tests.factories import CaseFactory, GrantFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _finger_sized(locator) -> None:
    for i in range(locator.count()):
        box = locator.nth(i).bounding_box()
        assert box["height"] >= 40, (locator.nth(i).inner_text(), box)


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
@pytest.mark.parametrize("javascript", [True, False])
def test_revoke_asks_first_on_a_phone_and_a_tablet(browser, live_server, output_dir, viewport, language, javascript):
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@revoke.example", language=language)
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@revoke.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician,
                       title="Chest CT - second opinion")
    grant = GrantFactory(organization=org, case=case, grantee=consultant, created_by=clinician)
    width = viewport[0]
    shares = f"{live_server.url}/sharing/"
    with device_page(browser, viewport, language, java_script_enabled=javascript) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(shares)
        row = page.locator(f'tr[data-grant="{grant.public_id}"]')
        page.wait_for_load_state("load")
        _finger_sized(row.get_by_test_id("revoke"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(output_dir / f"my-shares-revoke-{language}-{width}.png"), full_page=True)
        row.get_by_test_id("revoke").tap()
        # a tap asks; it does not revoke
        confirm = page.get_by_test_id("revoke-confirm")
        expect(confirm).to_contain_text(case.title)
        expect(page.get_by_test_id("revoke-recipient")).to_contain_text(consultant.email)
        assert Grant.objects.get(pk=grant.pk).revoked_at is None
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        _finger_sized(confirm.locator("form button, form a"))
        page.screenshot(path=str(output_dir / f"revoke-confirm-{language}-{width}.png"), full_page=True)
        # Cancel: back to the share's row, still active
        confirm.locator("form a").tap()
        page.wait_for_url(f"{shares}#share-{grant.public_id}")
        assert Grant.objects.get(pk=grant.pk).revoked_at is None
        # the confirmation's own button revokes
        row.get_by_test_id("revoke").tap()
        page.get_by_test_id("revoke-confirm-button").tap()
        page.wait_for_url(shares)
        expect(row.get_by_test_id("state")).to_have_class("badge state-revoked")
        assert Grant.objects.get(pk=grant.pk).revoked_at is not None
        expect(row.get_by_test_id("revoke")).to_have_count(0)
