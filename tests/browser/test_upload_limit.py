"""The organization's largest upload, typed as a number and a unit, on a tablet and a phone: the
number box and the unit list share one row inside the form, the label names the number box, and
a size typed in GB is saved."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import device_context, signed_in_as
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(("width", "height"), [(768, 1024), (390, 844)])
def test_the_upload_limit_is_typed_in_gb_on_a_tablet_and_a_phone(browser, live_server, width, height):
    org = OrganizationFactory(name="Size Test", slug="size-test", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@size.example")
    context = device_context(browser, width, height)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/org/settings/")
        number = page.get_by_label("Largest upload")
        unit = page.get_by_label("Unit")
        expect(number).to_have_value("20")
        expect(unit).to_have_value("GB")
        form = page.locator("main form").bounding_box()
        box, select = number.bounding_box(), unit.bounding_box()
        assert abs(box["y"] - select["y"]) < 4, (box, select)  # one row
        assert box["x"] >= form["x"] and select["x"] + select["width"] <= form["x"] + form["width"] + 1
        assert box["width"] >= 100, box

        number.fill("2.5")
        page.locator("main form button[type=submit]").click()
        expect(page.locator(".message-success")).to_be_visible()
        expect(page.get_by_label("Largest upload")).to_have_value("2.5")
        org.refresh_from_db()
        assert org.upload_max_bytes == 2560 * 1024**2
    finally:
        context.close()


def test_one_and_a_half_gb_typed_the_spanish_way_is_saved_as_one_and_a_half(browser, live_server):
    """"1,5" in the number box: a number box dropped the comma and 15 GB was saved."""
    org = OrganizationFactory(name="Size Test", slug="size-test-es", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@size-es.example", language="es")
    context = device_context(browser, 768, 1024, language="es")
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/org/settings/")
        number = page.get_by_label("Carga máxima")
        number.fill("")
        number.press_sequentially("1,5")
        expect(number).to_have_value("1,5")
        page.locator("main form button[type=submit]").click()
        expect(page.locator(".message-success")).to_be_visible()
        org.refresh_from_db()
        assert org.upload_max_bytes == 1536 * 1024**2
    finally:
        context.close()
