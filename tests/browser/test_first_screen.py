"""The first screen on a phone (390x844): the header is one short row, its links and tools behind
one Menu button, and a list's filters (the case list, the audit trail) behind a Filters button that
is open when a filter is in use, so that a clinician sees the first case without scrolling. A
tablet (768x1024 upright, 1024x768 on its side) shows the navigation and the filters as before,
without either button. Measured in Chromium at 390 px with an organization administrator of two
organizations (the most links): the header was 312 px high and the first case row began at
1015 px, below the first screen; now the header is 60 px and the first case row begins at 301 px."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Membership, Role
from tests.browser.conftest import signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
TABLETS = [{"width": 768, "height": 1024}, {"width": 1024, "height": 768}]
HEADER_MAX = 100  # px on a phone: one row (60 px measured), where the header took 312 px
TARGET = 40  # px, a finger's target, as in test_touch.py
# every link and control of the header, as the user sees them: [name, visible, height, right edge]
_HEADER_CONTROLS = """() => Array.from(document.querySelectorAll(
    '.site-header a[href], .site-header button, .site-header select, .site-header summary'))
  .filter(e => !e.closest('.visually-hidden, .org-switcher ul'))
  .map(e => { const r = e.getBoundingClientRect();
    return [(e.textContent || e.name).trim().replace(/\\s+/g, ' ').slice(0, 30), r.height > 0, r.height, r.right]; })"""


@pytest.fixture
def admin(live_server):
    """An organization administrator (every link of the menu) in two organizations (the
    organization menu), with cases, one of them closed."""
    first = OrganizationFactory(name="Northwind General Hospital", mfa_required_roles=[])
    second = OrganizationFactory(name="Seaside Valley Clinic", mfa_required_roles=[])
    user = member(first, Role.ORG_ADMIN, email="admin@first-screen.example")
    Membership.objects.create(user=user, organization=second, role=Role.CLINICIAN)
    for i in range(3):
        CaseFactory(organization=first, created_by=user, responsible_clinician=user, title=f"Chest CT {i}",
                    referring_question="8 mm nodule in the right upper lobe. Has it grown since the prior study?")
    CaseFactory(organization=first, created_by=user, responsible_clinician=user, title="Closed case", status="closed")
    return user


def _menu(page, **hidden):
    return page.get_by_role("button", name="Menu", **hidden)


def _filters(page, **hidden):
    return page.get_by_role("button", name="Filters", **hidden)


def test_on_a_phone_the_header_is_one_short_row_and_the_first_case_is_in_sight(page, live_server, admin):
    signed_in_as(page, live_server.url, admin)
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/cases/")
    header = page.locator(".site-header").bounding_box()
    assert header["height"] < HEADER_MAX, header
    row = page.locator(".case-table tbody tr").first.bounding_box()
    assert row["y"] + row["height"] <= PHONE["height"], row  # the whole first case, without scrolling
    expect(_menu(page)).to_be_visible()
    assert _menu(page).bounding_box()["height"] >= TARGET
    expect(page.get_by_role("link", name="Cases", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(page.get_by_label("Search")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_menu_opens_by_keyboard_and_everything_in_it_is_reachable_and_finger_sized(page, live_server, admin):
    signed_in_as(page, live_server.url, admin)
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/cases/")
    for _ in range(3):  # the skip link, the name (the way to the dashboard), Menu
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Menu"
    expect(_menu(page)).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(_menu(page)).to_have_attribute("aria-expanded", "true")
    controls = page.evaluate(_HEADER_CONTROLS)
    names = [name for name, *_ in controls]
    for name in ["Dashboard", "Cases", "Shares", "Shared with me", "Members", "Invitations", "Settings",
                 "Audit", "Second factor", "Sign out", "Change"]:
        assert name in names, names
    problems = [c for c in controls if not c[1] or c[2] < TARGET or c[3] > PHONE["width"]]
    assert not problems, problems
    # the organization menu opens from it
    page.locator(".org-switcher summary").click()
    expect(page.get_by_role("button", name=re.compile("Seaside Valley Clinic"))).to_be_visible()
    page.locator(".org-switcher summary").click()
    # on by Tab to Audit, followed with Enter
    page.locator(".site-menu a").first.focus()
    for _ in range(12):
        if page.evaluate("document.activeElement.textContent").strip() == "Audit":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/org/audit/")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("^Audit trail of Northwind"))
    # a new page starts with the menu closed; Space opens it and closes it again
    expect(_menu(page)).to_have_attribute("aria-expanded", "false")
    _menu(page).focus()
    page.keyboard.press("Space")
    expect(page.get_by_role("link", name="Cases", exact=True)).to_be_visible()
    page.keyboard.press("Space")
    expect(page.get_by_role("link", name="Cases", exact=True)).to_be_hidden()


def test_on_a_phone_the_filters_are_open_only_when_one_is_in_use(page, live_server, admin):
    signed_in_as(page, live_server.url, admin)
    page.set_viewport_size(PHONE)
    base = live_server.url
    # nothing narrows the list (the Clear link's "?status=", a page of it): closed, and a tap opens them
    for path in ["/cases/", "/cases/?status=", "/cases/?page=1"]:
        page.goto(f"{base}{path}")
        expect(_filters(page)).to_have_attribute("aria-expanded", "false")
        expect(page.get_by_label("Search")).to_be_hidden()
    _filters(page).click()
    expect(page.get_by_label("Search")).to_be_visible()
    page.get_by_label("Status").select_option("closed")
    page.get_by_role("button", name="Filter", exact=True).click()
    # a filter in the URL: open, showing what narrows the list
    page.wait_for_url(re.compile(r"status=closed"))
    expect(_filters(page)).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_label("Status")).to_have_value("closed")
    expect(page.locator(".case-table tbody tr")).to_have_count(1)
    for path in ["/cases/?q=Chest", "/cases/?modality=CT&page=1", "/org/audit/?outcome=denied"]:
        page.goto(f"{base}{path}")
        expect(_filters(page)).to_have_attribute("aria-expanded", "true")
        expect(page.locator("form.filters input, form.filters select").first).to_be_visible()
    # the audit trail: the same filters, closed until one is in use; a refused search shows why
    page.goto(f"{base}/org/audit/")
    expect(_filters(page)).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_label("Outcome")).to_be_hidden()
    page.goto(f"{base}/org/audit/?date_from=2026-02-01&date_to=2026-01-01")
    expect(_filters(page)).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_text("The start date is after the end date.")).to_be_visible()


@pytest.mark.parametrize("size", TABLETS, ids=["768x1024", "1024x768"])
def test_a_tablet_shows_the_navigation_and_the_filters_without_a_menu(page, live_server, admin, size):
    signed_in_as(page, live_server.url, admin)
    page.set_viewport_size(size)
    for path in ["/cases/", "/org/audit/"]:
        page.goto(f"{live_server.url}{path}")
        # the buttons are there for a phone, not shown here
        assert _menu(page, include_hidden=True).count() == 1 and _filters(page, include_hidden=True).count() == 1
        expect(_menu(page)).to_be_hidden()
        expect(_filters(page)).to_be_hidden()
        controls = page.evaluate(_HEADER_CONTROLS)
        assert [c for c in controls if not c[1] and c[0] != "Menu"] == [], controls
        expect(page.locator(".main-nav").get_by_role("link", name="Audit")).to_be_visible()
        expect(page.locator("form.filters")).to_be_visible()
    # the header's rows as before: the navigation beside the name at 1024 px, below it at 768 px
    brand = page.locator(".brand").bounding_box()
    nav = page.locator(".main-nav").bounding_box()
    assert (nav["x"] > brand["x"] + brand["width"]) is (size["width"] == 1024), (brand, nav)


def test_without_javascript_a_phone_shows_the_whole_header_and_the_filters(browser, live_server, admin):
    """No Menu or Filters button that would do nothing: everything shown, as before."""
    from tests.browser.conftest import _only_local

    context = browser.new_context(viewport=PHONE, locale="en-US", java_script_enabled=False)
    context.route("**/*", _only_local)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/cases/")
        assert _menu(page, include_hidden=True).count() == 1  # in the page, for a browser that runs the script
        expect(_menu(page)).to_be_hidden()
        expect(_filters(page)).to_be_hidden()
        expect(page.locator(".main-nav").get_by_role("link", name="Audit")).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.get_by_label("Search")).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_tablet_header_is_two_rows_with_sign_out_beside_the_other_tools(page, live_server, language):
    """At 768 px the Spanish header took three rows (167 px), "Cerrar sesión" alone on the
    third, at the left. The language's label is read, not shown (the list names the languages),
    and the tools keep to the right as they wrap."""
    org = OrganizationFactory(name="Northwind General Hospital", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="clinician@tablet.example")
    user.language = language
    user.save(update_fields=["language"])
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(f"{live_server.url}/cases/")
    header = page.locator(".site-header").bounding_box()
    assert header["height"] < 125, header  # two rows of 44 px targets
    select = page.locator("#language-select")
    expect(page.get_by_label("Language" if language == "en" else "Idioma")).to_have_count(1)
    sign_out = page.locator("form.signout button").bounding_box()
    assert abs(sign_out["y"] - select.bounding_box()["y"]) < 5  # one row
    assert sign_out["x"] + sign_out["width"] <= 768 and sign_out["x"] > 384  # at the right
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
