"""A form that changes something is sent once: on a slow network a second tap on its button (the
first seemed to do nothing) sent it again, and confirming a share twice made two shares with two
live links, of which the sharer saw one. Once a POST form is on its way its buttons are disabled
and a further submit is refused."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing.models import Grant
from tests.browser.conftest import device_context, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_confirming_a_share_twice_on_a_slow_network_sends_it_once(browser, live_server):
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@once.example")
    member(org, Role.EXTERNAL_CONSULTANT, email="consultant@once.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    context = device_context(browser, 768, 1024)
    page = context.new_page()
    share_url = f"{live_server.url}/sharing/cases/{case.public_id}/share/"
    held = []
    try:
        signed_in_as(page, live_server.url, clinician)
        page.goto(share_url)
        page.locator("#id_recipient_email").fill("consultant@once.example")
        page.get_by_role("button", name="Review the share").tap()
        # the button pressed is still sent with the form (its buttons are disabled only after)
        page.get_by_role("button", name="Change the details").tap()
        expect(page.locator("#id_recipient_email")).to_have_value("consultant@once.example")
        page.get_by_role("button", name="Review the share").tap()
        confirm = page.get_by_role("button", name="Confirm and share")
        expect(confirm).to_be_visible()
        page.wait_for_load_state()  # its scripts have run
        # the network is slow: the confirmation's POST is held until the second tap
        page.route(share_url, lambda route: held.append(route) if route.request.method == "POST"
                   else route.continue_())
        # the first tap, then the impatient second one and an Enter while the first is on its way
        # (in the page itself: Playwright waits for a navigation under way to finish)
        page.evaluate("""() => {
          const button = document.querySelector('main form button.primary');
          button.click();
          setTimeout(() => { button.click(); button.form.requestSubmit(); }, 100);
        }""")
        page.wait_for_timeout(1000)
        assert len(held) == 1, f"the form was sent {len(held)} times"
        held[0].continue_()
        expect(page.get_by_test_id("share-url")).to_be_visible()
        assert Grant.objects.filter(case=case).count() == 1
    finally:
        context.close()
