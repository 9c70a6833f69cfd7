"""Keyboard and small-screen use, seen in Chromium: a table wider than the screen can be scrolled
from the keyboard and is named; the organization menu opens within a phone's screen; the focus
ring stands out on the page's white and grey as well as on the blue header."""

from __future__ import annotations

import pytest

from apps.organizations.models import Membership, Role
from tests.browser.conftest import signed_in_as
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INK, FOCUS = "rgb(27, 31, 36)", "rgb(255, 191, 71)"


def _admin_with_members(page, live_server):
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@tables.example")
    for i in range(3):
        member(org, Role.CLINICIAN, email=f"clinician.number.{i}@a-long-hospital-domain.example")
    signed_in_as(page, live_server.url, admin)
    return admin


def test_a_table_wider_than_the_screen_is_a_named_region_scrolled_by_keyboard(page, live_server):
    _admin_with_members(page, live_server)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/org/members/")
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("w => w.scrollWidth > w.clientWidth")  # the members' table is wider
    assert wrap.get_attribute("tabindex") == "0" and wrap.get_attribute("role") == "region"
    assert wrap.get_attribute("aria-label") == "Members and their roles"  # the table's caption
    wrap.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.table-wrap').scrollLeft > 0")
    # on a wide screen the same table fits: no extra stop in the Tab order
    page.set_viewport_size({"width": 1400, "height": 900})
    page.wait_for_function("() => !document.querySelector('.table-wrap').hasAttribute('tabindex')")
    assert wrap.get_attribute("role") is None


def test_the_organization_menu_opens_within_a_phone_screen(page, live_server):
    first = OrganizationFactory(name="Northwind General Hospital", mfa_required_roles=[])
    second = OrganizationFactory(name="Harbor Valley Clinic", mfa_required_roles=[])
    user = member(first, Role.RADIOLOGIST, email="two.orgs@lightbox.example")
    Membership.objects.create(user=user, organization=second, role=Role.EXTERNAL_CONSULTANT)
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/")
    page.locator(".org-switcher summary").click()
    menu = page.locator(".org-switcher ul")
    menu.wait_for()
    box = menu.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box


def test_the_focus_ring_has_a_dark_ring_on_the_page_and_a_yellow_one_on_the_header(page, live_server):
    _admin_with_members(page, live_server)
    page.goto(f"{live_server.url}/org/members/")
    page.keyboard.press("Tab")  # the skip link, then the header's links
    page.keyboard.press("Tab")
    header = page.evaluate("() => { const s = getComputedStyle(document.activeElement);"
                           " return [document.activeElement.closest('.site-header') !== null, s.outlineColor]; }")
    assert header == [True, FOCUS]
    page.locator("main a").first.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # focus by keyboard: :focus-visible applies
    ring = page.evaluate("() => { const s = getComputedStyle(document.activeElement);"
                         " return [document.activeElement.closest('main') !== null, s.outlineColor, s.boxShadow]; }")
    assert ring[0] and ring[1] == INK and FOCUS in ring[2], ring


def test_a_long_address_in_a_sentence_wraps_on_a_small_phone(page, live_server):
    """The invitation page names the invited address in its first sentence; at 320 px a long
    address widened the page (a sideways scroll for every line)."""
    from apps.accounts.services import invitation_create

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@wrap.example")
    _invitation, raw = invitation_create(organization=org, by=admin, role=Role.EXTERNAL_CONSULTANT,
                                         email="a.very.long.consultant.address@an-elsewhere-hospital.example")
    page.set_viewport_size({"width": 320, "height": 700})
    page.goto(f"{live_server.url}/invite/{raw}/")
    assert "a.very.long.consultant.address" in page.inner_text("main")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
