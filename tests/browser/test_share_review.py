"""The share's review step (5. Confirm the share) shows back every term given on the form, and the
page after it every term the link was made with. It left out the opening time ("Not before", a
tumor board's day), the use limit, the link's second factor and the group's name: a wrong date
could not be caught before the link existed, and nothing reminded the sharer to give the
passcode by phone. A group's share takes no use limit or second factor (those are an anonymous
link's, refused on a share to named people): an anonymous link's review of them is in
tests/browser/test_share_form_kinds.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone, translation
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing.models import ShareLink
from tests.browser.conftest import device_context, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _es(text: str) -> str:
    """``text`` as the Spanish pages say it (English while the catalogue has no translation)."""
    with translation.override("es"):
        return translation.gettext(text)


TEXT = {
    "en": {"review": "Review the share", "confirm": "Confirm and share", "opens": "Opens",
           "counted": "168 hours, counted from when it opens"},
    "es": {"review": "Revisar el acceso compartido", "confirm": _es("Confirm and share"), "opens": "Se abre",
           "counted": "168 horas, contadas desde que se abre"},
}


@pytest.mark.parametrize(("viewport", "language"), [((768, 1024), "es"), ((390, 844), "en")])
def test_the_review_and_the_created_share_show_every_term_given(browser, live_server, output_dir, viewport,
                                                                 language):
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@review.example", language=language)
    member(org, Role.RADIOLOGIST, email="radiologist@review.example")
    member(org, Role.EXTERNAL_CONSULTANT, email="consultant@review.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician,
                       title="Chest CT - board")
    opens = (timezone.localtime() + timedelta(days=3)).replace(hour=15, minute=0, second=0, microsecond=0)
    width, height = viewport
    context = device_context(browser, width, height, language=language, timezone_id="UTC")
    page = context.new_page()
    words = TEXT[language]
    try:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/cases/{case.public_id}/share/")
        page.locator("#id_use_case").select_option("tumor_board")
        page.locator("#id_recipient_kind").select_option("group")
        page.locator("#id_group_emails").fill("consultant@review.example\nradiologist@review.example")
        page.locator("#id_group_name").fill("Thoracic board")
        page.locator("#id_not_before").fill(opens.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_role("button", name=words["review"]).tap()

        review = page.locator("main dl.facts")
        expect(review).to_contain_text("Thoracic board")
        expect(page.get_by_test_id("confirm-not-before")).to_have_text(opens.strftime("%Y-%m-%d 15:00"))
        expect(review).to_contain_text(words["counted"])
        # the kind of share: a tumor board's group (it said a named person once created)
        expect(page.get_by_test_id("share-kind")).to_have_attribute("data-kind", "tumor_board")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(output_dir / f"share-review-{language}-{width}.png"), full_page=True)
        assert not ShareLink.objects.exists()  # a review creates nothing

        page.get_by_role("button", name=words["confirm"]).tap()
        expect(page.get_by_test_id("share-url")).to_be_visible()
        expect(page.get_by_test_id("share-opens")).to_have_text(opens.strftime("%Y-%m-%d 15:00"))
        expect(page.get_by_test_id("share-kind")).to_have_attribute("data-kind", "tumor_board")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        link = ShareLink.objects.get()
        assert (link.max_uses, link.second_factor, link.not_before) == (None, "", opens)
    finally:
        context.close()


@pytest.mark.parametrize(("viewport", "language", "copied"), [
    ((390, 844), "es", "Enlace copiado"), ((768, 1024), "en", "Link copied")])
def test_the_link_shown_once_is_copied_by_a_tap(browser, live_server, viewport, language, copied):
    """The link is shown once: a Copy link button puts all of it on the clipboard and says so
    (selecting the read-only field by hand on a phone easily took part of it)."""
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@copy.example", language=language)
    member(org, Role.EXTERNAL_CONSULTANT, email="consultant@copy.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    width, height = viewport
    context = device_context(browser, width, height, language=language)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    words = TEXT[language]
    try:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/cases/{case.public_id}/share/")
        page.locator("#id_recipient_email").fill("consultant@copy.example")
        page.get_by_role("button", name=words["review"]).tap()
        page.get_by_role("button", name=words["confirm"]).tap()
        url = page.get_by_test_id("share-url").input_value()
        assert "/s/" in url
        page.get_by_role("button", name="Copiar enlace" if language == "es" else "Copy link").tap()
        expect(page.get_by_test_id("copy-status")).to_contain_text(copied)
        assert page.evaluate("navigator.clipboard.readText()") == url
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # and back to the case, where the share is among who has access (the only way back was
        # Go to my shares, whose rows do not lead to the case)
        page.get_by_test_id("back-to-case").tap()
        page.wait_for_url(f"{live_server.url}/cases/{case.public_id}/")
        expect(page.get_by_test_id("participant")).to_contain_text("consultant@copy.example")
    finally:
        context.close()
