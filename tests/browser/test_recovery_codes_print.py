"""The recovery codes page, shown once after enrolling an authenticator, has a Print button
(static/js/print.js: the CSP allows no inline script) and prints only the codes and the text that
says what they are: no navigation, footer, Print button or confirmation form on paper."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: window.print stubbed before the page's scripts run: the call is counted, no dialog opens
RECORD_PRINT = "window.__printCalls = 0; window.print = function () { window.__printCalls += 1; };"


def verified_session(page, base: str, user) -> None:
    """``page``'s context carries a session of ``user`` that passed the second factor (the
    recovery codes page is shown to no one else)."""
    from django.conf import settings
    from django.test import Client
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.accounts.conftest import totp_code

    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    client = Client()
    client.force_login(user)
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"}).status_code == 302
    name = settings.SESSION_COOKIE_NAME
    page.context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}])
def test_the_recovery_codes_are_printed_without_the_navigation(page, live_server, viewport):
    from django_otp.plugins.otp_static.models import StaticDevice

    org = OrganizationFactory(name="Print Test", slug="print-test")
    user = member(org, Role.CLINICIAN, email="clinician@print.example")
    verified_session(page, live_server.url, user)
    page.set_viewport_size(viewport)
    page.add_init_script(RECORD_PRINT)

    # the page makes the codes (none yet) and shows them once, to this session
    page.goto(f"{live_server.url}/accounts/mfa/recovery-codes/")
    codes = list(StaticDevice.objects.get(user=user).token_set.values_list("token", flat=True))
    button = page.get_by_role("button", name="Print the codes")
    expect(button).to_be_visible()
    assert button.get_attribute("type") == "button"  # prints; never sends the confirmation form
    button.click()
    page.wait_for_function("window.__printCalls === 1")
    assert "/accounts/mfa/recovery-codes/" in page.url
    printed_out = ("header.site-header", "footer.site-footer", "main form", "button[data-print]")
    for shown in printed_out:
        expect(page.locator(shown)).to_be_visible()
    if viewport["width"] > 600:  # on a phone the navigation is behind the Menu button anyway
        expect(page.locator("nav.main-nav")).to_be_visible()

    page.emulate_media(media="print")
    for hidden in (*printed_out, "nav.main-nav"):
        expect(page.locator(hidden)).to_be_hidden()
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    expect(page.get_by_text("If you lose your phone, each of these codes signs you in once.")).to_be_visible()
    codes_list = page.get_by_test_id("recovery-codes")
    expect(codes_list.locator("li")).to_have_count(len(codes))
    for code in codes:
        expect(codes_list.get_by_text(code, exact=True)).to_be_visible()

    page.emulate_media(media="screen")
    expect(page.locator("header.site-header")).to_be_visible()
    expect(button).to_be_visible()
