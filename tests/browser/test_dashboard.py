"""A person signs in as a demo user, sees the dashboard, switches language; on a phone too."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django_otp.oath import TOTP
from playwright.sync_api import expect

from apps.accounts.demo import DEMO_TOTP_KEY
from apps.core.demo import DEMO_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _second_factor_on(settings):
    settings.LIGHTBOX_MFA_ENFORCED = True  # as in `make run`


def _sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url  # signed-out visitors land on sign-in
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)  # the sign-in has answered
    if "/accounts/mfa/verify/" in page.url:
        # admins and consultants must use a second factor: the demo authenticator's code
        page.get_by_label(re.compile("Code from your authenticator app")).fill(
            f"{TOTP(bytes.fromhex(DEMO_TOTP_KEY)).token():06d}")
        page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{base}/")


def test_sign_in_dashboard_language_switch_screenshot(page, live_server, output_dir):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    _sign_in(page, live_server.url, "admin@northwind.example")

    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard"
    expect(page.get_by_role("heading", name="Northwind General Hospital")).to_be_visible()
    assert page.get_by_test_id("role").inner_text() == "Organization admin"
    expect(page.get_by_role("link", name="Members")).to_be_visible()

    page.get_by_label("Language").select_option("es")
    page.get_by_role("button", name="Change").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Panel")  # the page in Spanish
    assert page.locator("html").get_attribute("lang") == "es"
    expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()
    shot = output_dir / "dashboard-es.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5_000


def test_dashboard_fits_a_phone_and_works_by_keyboard(page, live_server, output_dir):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, live_server.url, "dr.morgan@lightbox.example")
    # nothing wider than the phone: no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(output_dir / "dashboard-phone.png"), full_page=True)

    # keyboard: the first Tab reaches the skip link, which moves focus to the content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Skip to content"

    # Morgan starts in the first organization by name, as an external consultant there ...
    expect(page.get_by_role("heading", name="Harbor Valley Clinic")).to_be_visible()
    assert page.get_by_test_id("role").inner_text() == "External consultant"
    # ... and the switcher works on the phone, in the header's menu: to Northwind, where Morgan is a radiologist
    page.get_by_role("button", name="Menu").click()
    page.locator(".org-switcher summary").click()
    page.get_by_role("button", name=re.compile("Northwind General Hospital")).click()
    expect(page.get_by_role("heading", name="Northwind General Hospital")).to_be_visible()
    page.wait_for_load_state("load")  # the new page's own load: its styles are applied
    assert page.get_by_test_id("role").inner_text() == "Radiologist"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_every_form_control_has_a_label(page, live_server):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    _sign_in(page, live_server.url, "admin@northwind.example")
    for path in ("/", "/org/members/", "/org/settings/"):
        page.goto(f"{live_server.url}{path}")
        unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.name)""")
        assert unlabeled == [], f"{path}: controls without a label: {unlabeled}"
