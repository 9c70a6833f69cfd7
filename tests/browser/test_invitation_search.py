"""The invitation form's list of cases on a tablet: a searched list, as the tumor board form's
(tests/browser/test_tumor_board.py). A case beyond those drawn is found by the list's search
(as it is typed, with the script; with the Search button, without), ticked, kept through the
next search, and the invitation sent opens it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import _only_local, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def many_cases(db):
    """An organization with more open cases than the invitation form draws."""
    from apps.core.forms import CHOICES_SHOWN

    org = OrganizationFactory(name="Northwind Test", slug="northwind-test", mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="inviter@northwind.test", full_name="Iris Inviter")
    for i in range(CHOICES_SHOWN + 10):
        CaseFactory(organization=org, title=f"Chest CT {i:03d}")
    wanted = CaseFactory(organization=org, title="Xanthelasma Vorbeck review")
    return clinician, wanted


@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
def test_an_invitation_finds_ticks_and_opens_a_case_beyond_those_drawn_on_a_tablet(browser, live_server, many_cases,
                                                                                  output_dir, script):
    from apps.accounts.models import Invitation

    clinician, wanted = many_cases
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="en-US", has_touch=True,
                                  java_script_enabled=script)
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}{reverse('accounts:invitation_send')}")
        page.get_by_label("E-mail address").fill("quorra.outside@consult.test")
        cases = page.get_by_role("group", name="Cases the invitation opens")
        found = cases.get_by_test_id("choices-found")
        expect(found).to_have_text("Showing 50 of 61; search to find the others.")
        expect(cases.locator(".choice")).to_have_count(50)
        expect(cases.get_by_label("Xanthelasma Vorbeck review")).to_have_count(0)

        def search(text):
            cases.get_by_label("Find in this list").fill(text)  # with the script, matches come as typed
            if not script:  # the form drawn again, as sent; nothing sent
                cases.get_by_role("button", name="Search").click()
                page.wait_for_load_state()

        search("vorbeck")
        expect(found).to_have_text("1 choice matches the search.")
        cases.get_by_label("Xanthelasma Vorbeck review").check()
        search("chest ct 05")
        expect(cases.locator(".choice")).to_have_count(11)  # 050-059, and the ticked one
        expect(cases.get_by_label("Xanthelasma Vorbeck review")).to_be_checked()
        expect(page.get_by_label("E-mail address")).to_have_value("quorra.outside@consult.test")  # typed, kept
        assert not Invitation.objects.exists()
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        page.screenshot(path=str(output_dir / f"invitation-search-tablet-{'script' if script else 'no-script'}.png"),
                        full_page=True)
        page.get_by_role("button", name="Send invitation").click()
        # the invitations page (without the script, the URL keeps the Search button's #fragment)
        expect(page.locator("main")).to_contain_text("Invitation sent to quorra.outside@consult.test.")
        assert page.url.split("#")[0] == f"{live_server.url}{reverse('accounts:invitation_list')}"
        invitation = Invitation.objects.get()
        assert invitation.email == "quorra.outside@consult.test"
        assert list(invitation.cases.all()) == [wanted]
    finally:
        context.close()
