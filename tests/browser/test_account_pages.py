"""allauth's own pages (password reset, setting a password from its e-mail link, changing it) on a
phone: their forms look and behave as the portal's own, through the overridden allauth elements
(templates/allauth/elements/): a full-width input under its label, each error beside its field,
the submit button the page's main action."""

from __future__ import annotations

import pytest

from apps.organizations.models import Role
from tests.browser.conftest import signed_in_as
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def test_the_password_reset_form_is_the_portals_on_a_phone(page, live_server):
    """allauth's default drew the e-mail box 218 px wide on a 390 px phone, cutting its own
    placeholder off ("Dirección de correo elect"), with a secondary-looking button."""
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/accounts/password/reset/")
    form = page.locator("main form").bounding_box()
    email = page.locator("main input[type=email]").bounding_box()
    assert email["width"] >= form["width"] - 2, (email, form)
    assert page.locator("main label[for=id_email]").is_visible()
    assert "primary" in (page.locator("main form button[type=submit]").get_attribute("class") or "")


def test_a_password_change_error_is_beside_its_field_and_named_by_it(page, live_server):
    """allauth's default put every field's errors in a list above its label, tied to no input."""
    org = OrganizationFactory(mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="password.change@phone.test")
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/accounts/password/change/")
    page.fill("#id_oldpassword", "not-the-password")
    page.fill("#id_password1", "short")
    page.fill("#id_password2", "short")
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    field = page.locator("#id_password1")
    assert field.get_attribute("aria-invalid") == "true"
    described = field.get_attribute("aria-describedby") or ""
    assert "id_password1_error" in described.split()
    assert "12" in page.locator("#id_password1_error").inner_text()
    assert page.locator("main ul.errorlist").count() == 0
    new = field.bounding_box()
    assert new["width"] >= page.locator("main form").bounding_box()["width"] - 2
