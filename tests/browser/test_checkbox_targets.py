"""A checkbox of its own on a form (the organization's Allow anonymous links and Staff may sign in
with a password, the recovery codes page's I saved these recovery codes) is a finger-sized row
whose label is the target, as each choice of a list of checkboxes is: it was a 13 px box beside a
24 px line of text, on a phone and a tablet alike."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Organization, Role
from tests.browser.conftest import PHONE_ES_TABLET_EN, device_page, signed_in_as
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABEL = {"en": "Allow anonymous links", "es": "Permitir enlaces anónimos"}


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_a_lone_checkbox_is_a_finger_sized_row(browser, live_server, output_dir, viewport, language):
    org = OrganizationFactory(mfa_required_roles=[], anonymous_links_enabled=False)
    admin = member(org, Role.ORG_ADMIN, email="admin@checkbox.example", language=language)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/org/settings/")
        for box in (page.locator("#id_anonymous_links_enabled"), page.locator("#id_password_login_allowed")):
            expect(box).to_be_visible()
            assert box.bounding_box()["height"] >= 20 and box.bounding_box()["width"] >= 20
            label = page.locator(f"label[for='{box.get_attribute('id')}']")
            assert label.bounding_box()["height"] >= 40
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(output_dir / f"settings-checkboxes-{language}-{width}.png"), full_page=True)
        # the label is the target: a tap on it ticks the box, and the form saves it
        page.get_by_text(LABEL[language], exact=True).tap()
        expect(page.locator("#id_anonymous_links_enabled")).to_be_checked()
        page.locator("main form.stacked button.primary").tap()
        expect(page.locator(".message-success")).to_be_visible()
        assert Organization.objects.get(pk=org.pk).anonymous_links_enabled


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_the_recovery_codes_confirmation_is_a_finger_sized_row(browser, live_server, viewport, language):
    from tests.browser.test_recovery_codes_print import verified_session

    org = OrganizationFactory(mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="clinician@codes.example", language=language)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        verified_session(page, live_server.url, user)
        # the page makes the codes (none yet) and shows them once, to this session
        page.goto(f"{live_server.url}/accounts/mfa/recovery-codes/")
        box = page.locator("#id_saved")
        expect(box).to_be_visible()
        assert box.bounding_box()["height"] >= 20 and box.bounding_box()["width"] >= 20
        assert page.locator("label[for='id_saved']").bounding_box()["height"] >= 40
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.locator("label[for='id_saved']").tap()
        expect(box).to_be_checked()
