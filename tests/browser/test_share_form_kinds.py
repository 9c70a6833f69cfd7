"""The share form on a phone shows only the fields of the chosen kind of recipient (QA on the
demo: a group's fields, a use limit, a second factor and a passcode showed for every kind, and the
form was long), and the templates table is a card a template, "Who can receive it" in sight (it
was cut off behind a sideways scroll). js/share_form.js; the server's side:
tests/sharing/test_share_form_fields_by_kind.py."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing.models import ShareLink
from tests.browser.conftest import device_page, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: the fields that belong to some kinds only, and those kinds
KIND_FIELDS = {"recipient_email": {"user", "email"}, "group_emails": {"group"}, "group_name": {"group"},
               "max_uses": {"anonymous"}, "second_factor": {"anonymous"}, "passcode": {"anonymous"}}
#: fields every kind takes
ALWAYS = ("use_case", "recipient_kind", "hours", "download_limit", "not_before")


def _sideways(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_the_form_shows_only_the_chosen_kinds_fields_on_a_phone(browser, live_server):
    org = OrganizationFactory(mfa_required_roles=[], anonymous_links_enabled=True)
    clinician = member(org, Role.CLINICIAN, email="clinician@kinds.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    width = 390
    with device_page(browser, (width, 844)) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/cases/{case.public_id}/share/")

        # the templates table: a card a template, who can receive it within the screen (not behind
        # a sideways scroll of its .table-wrap)
        assert page.get_by_test_id("share-templates").evaluate(
            "t => t.closest('.table-wrap').scrollWidth <= t.closest('.table-wrap').clientWidth")
        for key in ("second_opinion", "tumor_board", "custom"):
            cell = page.get_by_test_id(f"template-recipients-{key}")
            cell.scroll_into_view_if_needed()
            expect(cell).to_be_visible()
            box = cell.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (key, box)
        assert page.get_by_test_id("template-recipients-custom").evaluate(
            "td => getComputedStyle(td, '::before').content") == '"Who can receive it"'
        assert _sideways(page) <= width

        page.locator("#id_use_case").select_option("custom")
        for kind in ("user", "group", "email", "anonymous", "user"):
            page.locator("#id_recipient_kind").select_option(kind)
            for name, kinds in KIND_FIELDS.items():
                field = page.locator(f"#id_{name}")
                if kind in kinds:
                    expect(field).to_be_visible()
                    expect(field).to_be_enabled()
                else:
                    expect(field).to_be_hidden()
                    expect(field).to_be_disabled()
            for name in ALWAYS:
                expect(page.locator(f"#id_{name}")).to_be_visible()
            assert _sideways(page) <= width, kind

        # what was typed for an anonymous link before choosing a person is not sent: no refusal
        page.locator("#id_recipient_kind").select_option("anonymous")
        page.locator("#id_max_uses").fill("3")
        page.locator("#id_second_factor").select_option("passcode")
        page.locator("#id_passcode").fill("board-2026")
        page.locator("#id_recipient_kind").select_option("user")
        page.locator("#id_recipient_email").fill(clinician.email)
        page.get_by_role("button", name="Review the share").tap()
        expect(page.get_by_role("button", name="Confirm and share")).to_be_visible()  # a person: not a link
        expect(page.get_by_test_id("confirm-max-uses")).to_have_count(0)
        expect(page.get_by_test_id("confirm-second-factor")).to_have_count(0)
        assert _sideways(page) <= width

        # back to the form: the person's fields again, the link's hidden
        page.get_by_role("button", name="Change the details").tap()
        expect(page.locator("#id_recipient_email")).to_be_visible()
        expect(page.locator("#id_passcode")).to_be_hidden()

        # an anonymous link keeps its terms, shown on the review
        page.locator("#id_recipient_kind").select_option("anonymous")
        page.locator("#id_max_uses").fill("3")
        page.locator("#id_second_factor").select_option("passcode")
        page.locator("#id_passcode").fill("board-2026")
        page.get_by_role("button", name="Review the share").tap()
        expect(page.get_by_test_id("confirm-max-uses")).to_have_text("3")
        expect(page.get_by_test_id("confirm-second-factor")).to_contain_text("by another channel (phone)")
        assert _sideways(page) <= width
        page.get_by_role("button", name="Confirm and create the link").tap()
        expect(page.get_by_test_id("share-url")).to_be_visible()
        link = ShareLink.objects.get()
        assert (link.anonymous, link.max_uses, link.second_factor) == (True, 3, "passcode")


def test_without_anonymous_links_the_links_terms_are_not_there(browser, live_server):
    org = OrganizationFactory(mfa_required_roles=[], anonymous_links_enabled=False)
    clinician = member(org, Role.CLINICIAN, email="clinician@nolinks.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    with device_page(browser, (390, 844)) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/cases/{case.public_id}/share/")
        for name in ("max_uses", "second_factor", "passcode"):
            expect(page.locator(f"#id_{name}")).to_have_count(0)
        expect(page.locator("#id_recipient_kind option[value='anonymous']")).to_have_count(0)
        page.locator("#id_recipient_kind").select_option("group")
        expect(page.locator("#id_group_emails")).to_be_visible()
        expect(page.locator("#id_recipient_email")).to_be_hidden()
        assert _sideways(page) <= 390
