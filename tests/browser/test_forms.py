"""A refused form on a phone: the first error is brought into view and read out, instead of
waiting screens below the top of the reloaded page (found by an exploratory test on a phone)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import _only_local, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True,
                                  has_touch=True)
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def _open_share_form(phone, live_server) -> None:
    """A clinician's share form for a case of theirs, on the phone."""
    org = OrganizationFactory(mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN)
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner)
    signed_in_as(phone, live_server.url, owner)
    phone.goto(f"{live_server.url}/sharing/cases/{case.public_id}/share/")


def test_a_refused_share_form_shows_its_first_error_on_a_phone(phone, live_server, output_dir):
    _open_share_form(phone, live_server)
    phone.get_by_label("Recipient's e-mail address").fill("nobody@example.org")
    phone.get_by_role("button", name="Review the share").click()
    error = phone.locator("#id_recipient_email_error")
    expect(error).to_contain_text("No active account has that address")
    expect(error).to_be_focused()
    expect(error).to_be_in_viewport()
    expect(phone.get_by_label("Recipient's e-mail address")).to_be_in_viewport()
    phone.screenshot(path=str(output_dir / "share-form-error-phone.png"))


def test_a_page_without_errors_keeps_its_place(phone, live_server):
    _open_share_form(phone, live_server)
    phone.wait_for_load_state("load")
    assert phone.evaluate("window.scrollY") == 0
    assert phone.evaluate("document.activeElement === document.body")


def test_a_long_list_of_choices_is_narrowed_by_what_is_typed_and_keeps_what_is_ticked(page, live_server):
    """A tumor board's form offers every open case of the organization: a hospital's hundreds
    were one list to scroll through. The box above a long list narrows it (for the board's lists,
    with the matches the server finds: tests/browser/test_tumor_board.py); a ticked case stays."""
    org = OrganizationFactory(mfa_required_roles=[])
    host = member(org, Role.CLINICIAN)
    for i in range(20):
        CaseFactory(organization=org, created_by=host, title=f"Chest CT {i:02d}")
    CaseFactory(organization=org, created_by=host, title="Liver MR follow-up")
    signed_in_as(page, live_server.url, host)
    page.goto(f"{live_server.url}/boards/new/")
    cases = page.get_by_role("group", name="Cases")
    find = cases.get_by_label("Find in this list")
    expect(find).to_be_visible()
    choices = cases.locator(".choice")
    expect(choices).to_have_count(21)
    cases.get_by_label("Chest CT 07").check()
    find.fill("MR follow")  # not "liver": the search also reads patients' names (Oliver)
    expect(cases.locator(".choice:visible")).to_have_count(2)
    expect(cases.get_by_label("Liver MR follow-up")).to_be_visible()
    expect(cases.get_by_label("Chest CT 07")).to_be_visible()  # ticked: never hidden
    expect(cases.get_by_label("Chest CT 08")).to_be_hidden()
    find.fill("")
    expect(cases.locator(".choice:visible")).to_have_count(21)
    # a short list (the host's choice of participants here: one member) has no box
    assert page.locator(".choices-search").count() == 1
