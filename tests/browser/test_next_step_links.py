"""The links that say where to go next are finger-sized on a phone and a tablet: Share created's
Back to the case and Go to my shares (the sharer's only ways on once the link is copied) and the
error pages' Back to the dashboard were a 19 px line of text."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import device_context, signed_in_as
from tests.factories import CaseFactory, GrantFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REVIEW = {"en": "Review the share", "es": "Revisar el acceso compartido"}
CONFIRM = {"en": "Confirm and create the link", "es": "Confirmar y crear el enlace"}


def assert_finger_sized(links) -> None:
    expect(links.first).to_be_visible()
    for i in range(links.count()):
        box = links.nth(i).bounding_box()
        assert box["height"] >= 40, (links.nth(i).inner_text(), box)


@pytest.mark.parametrize(("viewport", "language"), [((390, 844), "es"), ((768, 1024), "en")])
def test_where_to_go_next_is_a_finger_sized_link(browser, live_server, viewport, language):
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@next.example", language=language)
    member(org, Role.EXTERNAL_CONSULTANT, email="consultant@next.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    width, height = viewport
    context = device_context(browser, width, height, language=language)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/cases/{case.public_id}/share/")
        page.locator("#id_recipient_email").fill("consultant@next.example")
        page.get_by_role("button", name=REVIEW[language]).tap()
        page.get_by_role("button", name=CONFIRM[language]).tap()
        expect(page.get_by_test_id("share-url")).to_be_visible()
        assert_finger_sized(page.locator("main section a"))

        page.goto(f"{live_server.url}/no-such-page/")
        assert_finger_sized(page.locator("main .error-page a"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()


@pytest.mark.parametrize(("viewport", "language"), [((390, 844), "es"), ((768, 1024), "en")])
def test_my_shares_extend_is_as_tall_as_revoke(browser, live_server, viewport, language):
    """My shares: each share's Extend (a link) was 24 px tall beside its 40 px Revoke button."""
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@extend.example", language=language)
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@extend.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    GrantFactory(organization=org, case=case, grantee=consultant, created_by=clinician)
    width, height = viewport
    context = device_context(browser, width, height, language=language)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/")
        assert_finger_sized(page.locator("td.actions a, td.actions button"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()


@pytest.mark.parametrize(("viewport", "language", "back"), [
    ((390, 844), "es", "Volver al caso compartido"), ((768, 1024), "en", "Back to the shared case")])
def test_a_link_holder_refused_a_download_is_led_back_to_the_shared_case(browser, live_server, viewport,
                                                                         language, back):
    """An anonymous link's holder asking for what the link does not allow (the original DICOM of a
    preview-only link) was told to ask the sender, with no way back to the case but the browser's."""
    from apps.sharing import services
    from apps.sharing.usecases import RecipientKind, UseCase

    org = OrganizationFactory(mfa_required_roles=[], anonymous_links_enabled=True)
    clinician = member(org, Role.CLINICIAN, email="clinician@refused.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    _grant, _link, raw = services.share_create(case=case, by=clinician, use_case=UseCase.CUSTOM,
                                               recipient_kind=RecipientKind.ANONYMOUS, max_uses=3)
    width, height = viewport
    context = device_context(browser, width, height, language=language)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/s/{raw}/")
        page.locator("main form button").first.tap()
        page.wait_for_url(f"{live_server.url}/sharing/cases/{case.public_id}/")
        refused = page.goto(f"{live_server.url}/cases/{case.public_id}/download/?rendition=original")
        assert refused.status == 403
        expect(page.get_by_test_id("refused-link-holder")).to_be_visible()
        assert_finger_sized(page.get_by_role("link", name=back))
        page.get_by_role("link", name=back).tap()
        page.wait_for_url(f"{live_server.url}/sharing/cases/{case.public_id}/")
        expect(page.get_by_test_id("anonymous-banner")).to_be_visible()
    finally:
        context.close()
