"""The links that say where to go next are finger-sized on a phone and a tablet: Share created's
Back to the case and Go to my shares (the sharer's only ways on once the link is copied) and the
error pages' Back to the dashboard were a 19 px line of text."""

from __future__ import annotations

import contextlib

import pytest
from django.test import RequestFactory
from django.utils import translation
from playwright.sync_api import expect

from apps.audit.services import record
from apps.organizations.models import Role
from tests.browser.conftest import PHONE_ES_TABLET_EN, device_page, signed_in_as
from tests.factories import CaseFactory, GrantFactory, OrganizationFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _es(text: str) -> str:
    """``text`` as the Spanish pages say it (English while the catalogue has no translation)."""
    with translation.override("es"):
        return translation.gettext(text)


REVIEW = {"en": "Review the share", "es": "Revisar el acceso compartido"}
#: a share to a person or a group confirms "and share" (an anonymous link's "and create the link"):
#: in Spanish once the catalogue translates it, in English until then
CONFIRM = {"en": "Confirm and share", "es": _es("Confirm and share")}


def assert_finger_sized(links) -> None:
    # measured once the stylesheet is applied: a box read before (the page just navigated to) was
    # the unstyled 17 px line, a flaky failure
    links.page.wait_for_load_state("load")
    expect(links.first).to_be_visible()
    for i in range(links.count()):
        box = links.nth(i).bounding_box()
        assert box["height"] >= 40, (links.nth(i).inner_text(), box)


@contextlib.contextmanager
def share_created(browser, base: str, viewport, language: str):
    """A clinician's page on Share created, on a touch device: their case shared with a consultant
    on the share page, through its review step."""
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@next.example", language=language)
    member(org, Role.EXTERNAL_CONSULTANT, email="consultant@next.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, base, clinician)
        page.goto(f"{base}/sharing/cases/{case.public_id}/share/")
        page.locator("#id_recipient_email").fill("consultant@next.example")
        page.get_by_role("button", name=REVIEW[language]).tap()
        page.get_by_role("button", name=CONFIRM[language]).tap()
        expect(page.get_by_test_id("share-url")).to_be_visible()
        yield page


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_where_to_go_next_is_a_finger_sized_link(browser, live_server, viewport, language):
    width = viewport[0]
    with share_created(browser, live_server.url, viewport, language) as page:
        assert_finger_sized(page.locator("main section a"))

        page.goto(f"{live_server.url}/no-such-page/")
        assert_finger_sized(page.locator("main .error-page a"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_my_shares_extend_is_as_tall_as_revoke(browser, live_server, viewport, language):
    """My shares: each share's Extend (a link) was 24 px tall beside its 40 px Revoke button."""
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@extend.example", language=language)
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@extend.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    GrantFactory(organization=org, case=case, grantee=consultant, created_by=clinician)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/")
        assert_finger_sized(page.locator("td.actions a, td.actions button"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width


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
    with device_page(browser, viewport, language) as page:
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


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_share_done_links_leave_no_separator_dangling(browser, live_server, viewport, language):
    """Share created: Back to the case and Go to my shares are a list that wraps between its
    links; the "·" between them was left at a line's end when they wrapped on a phone."""
    width = viewport[0]
    with share_created(browser, live_server.url, viewport, language) as page:
        links = page.get_by_test_id("next-links")
        expect(links.get_by_role("listitem")).to_have_count(2)
        assert "·" not in links.inner_text()
        assert_finger_sized(links.get_by_role("link"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_audit_exports_and_ids_are_finger_sized(browser, live_server, viewport, language):
    """The audit trail: Export CSV and Export FHIR were a 24 px line of text; a row's case and
    study links (a short id) were 39 px wide. Each is now at least 40 x 40 px, and the page does
    not scroll sideways (the table does, in its own box)."""
    org = OrganizationFactory(mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@audit-targets.example", language=language)
    case = CaseFactory(organization=org, created_by=admin, responsible_clinician=admin, title="Chest CT")
    study = StudyFactory(organization=org, case=case)
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.10")
    request.user = admin
    record(action="study.viewed", organization=org, actor=admin, target=study, case=case, study=study,
           request=request)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/org/audit/")
        exports = page.locator(".audit-exports button")
        expect(exports).to_have_count(2)
        assert_finger_sized(exports)
        ids = page.locator(".audit-table td a")
        expect(ids).to_have_count(2)
        assert_finger_sized(ids)
        for i in range(ids.count()):
            assert ids.nth(i).bounding_box()["width"] >= 40, ids.nth(i).bounding_box()
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_settings_and_sign_in_links_are_finger_sized(browser, live_server, viewport, language):
    """Organization settings' Single sign-on for staff and the sign-in page's Forgot your
    password? and Sign in with your organization were a 19 px line of text."""
    org = OrganizationFactory(mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@sso-link.example", language=language)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/org/settings/")
        assert_finger_sized(page.locator("main a[href='/org/sso/']"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.context.clear_cookies()
        page.goto(f"{live_server.url}/accounts/login/")
        links = page.locator("main .card p a")
        expect(links).to_have_count(2)
        assert_finger_sized(links)
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_shared_case_study_name_is_finger_sized(browser, live_server, viewport, language):
    """A case shared with you: each study's name, the way to the study's page, was a 24 px line
    of text beside its View button."""
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@study-name.example")
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@study-name.example", language=language)
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    StudyFactory(organization=org, case=case, study_description="CT CHEST")
    GrantFactory(organization=org, case=case, grantee=consultant, created_by=clinician)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, consultant)
        page.goto(f"{live_server.url}/sharing/cases/{case.public_id}/")
        name = page.locator(".shared-studies a:not(.button)")
        expect(name).to_have_text("CT CHEST")
        assert_finger_sized(name)
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_a_link_standing_alone_on_its_line_is_finger_sized(browser, live_server, viewport, language):
    """A paragraph holding one link, where to go next (the password reset's Back to sign in, the
    security page's Change your password, My shares' sharing settings), was a 19 px line of text;
    tests/core/test_template_links.py keeps new ones to the rule."""
    org = OrganizationFactory(mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@alone.example", language=language)
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        page.goto(f"{live_server.url}/accounts/password/reset/done/")
        assert_finger_sized(page.locator("main p a"))
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/accounts/mfa/")
        assert_finger_sized(page.get_by_test_id("change-password"))
        page.goto(f"{live_server.url}/sharing/")
        assert_finger_sized(page.locator("main a[href='/sharing/settings/']"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize(("viewport", "language"), [
    ((1440, 900), "en"), ((1366, 900), "en"), ((1440, 900), "es"), ((820, 1180), "en"), ((390, 844), "es")])
def test_my_shares_actions_are_in_view_without_scrolling_sideways(browser, live_server, viewport, language):
    """My shares at a desktop's, a tablet's and a phone's width: Revoke and Extend are in the
    viewport and nothing scrolls sideways, neither the page nor the table's box. On a 1366 px screen
    the actions cell (display: flex on the cell itself) left the table's layout and showed "R" of
    Revoke; at 1440 px the table needed 1142 px of its 1120 px box (a state's badge on one line:
    "Expired, never opened"), so Revoke and Extend were cut at its edge; on a tablet and a phone they
    were 700 px off-screen, at the end of the table scrolled sideways (found by QA)."""
    from datetime import timedelta

    from django.utils import timezone

    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@wide.example", language=language,
                       full_name="Casey Clinician")
    # a long address (one word: it did not wrap) widens the recipient's column
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="a.rather.long.address@consultants-northwind.example",
                        full_name="Emery Consultant (Northwind)")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician,
                       title="Chest CT with a rather long title for the table")
    GrantFactory(organization=org, case=case, grantee=consultant, created_by=clinician, use_case="consultant")
    # an ended share's state is the longest badge ("Expired, never opened")
    GrantFactory(organization=org, case=case, grantee=consultant, created_by=clinician, use_case="telehealth",
                 starts_at=timezone.now() - timedelta(days=3), expires_at=timezone.now() - timedelta(days=1))
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}/sharing/")
        page.wait_for_load_state("load")
        expect(page.get_by_test_id("extend")).to_have_count(1)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        wrap = page.locator(".table-wrap").first
        sizes = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert sizes[0] <= sizes[1], sizes  # the table's box does not scroll sideways either
        frame = wrap.bounding_box()
        controls = page.locator("[data-testid=revoke], [data-testid=extend]")
        assert controls.count() == 2
        for i in range(controls.count()):
            controls.nth(i).scroll_into_view_if_needed()
            box = controls.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (controls.nth(i).inner_text(), box)
            assert box["x"] + box["width"] <= frame["x"] + frame["width"] + 0.5, (box, frame)
        if width > 1100:  # a table there: the cell stays in its layout
            cell = page.locator("td.actions").first.evaluate("c => getComputedStyle(c).display")
            assert cell == "table-cell"


@pytest.mark.parametrize(("viewport", "language"), [((1440, 900), "en"), ((820, 1180), "es"), ((390, 844), "es")])
def test_the_invitations_page_does_not_scroll_sideways(browser, live_server, viewport, language):
    """The invitations page, with its cases and sender columns: on a phone the table scrolled
    sideways and its Send again and Withdraw were out of sight (found by QA); a card an
    invitation below a desktop's width, as My shares."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.models import Invitation

    org = OrganizationFactory(mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@invites.example", language=language, full_name="Avery Admin")
    case = CaseFactory(organization=org, created_by=admin, title="Chest CT with a rather long title for the table")
    invitation = Invitation.objects.create(
        organization=org, email="a.rather.long.address@consultants-northwind.example", role=Role.EXTERNAL_CONSULTANT,
        token_hash="f" * 64, created_by=admin, expires_at=timezone.now() + timedelta(days=3))
    invitation.cases.set([case])
    width = viewport[0]
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, admin)
        page.goto(f"{live_server.url}/org/invitations/")
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        wrap = page.locator(".table-wrap").first
        sizes = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert sizes[0] <= sizes[1], sizes
        buttons = page.locator("[data-testid=invitations] td.actions button")
        assert buttons.count() == 2
        for i in range(buttons.count()):
            buttons.nth(i).scroll_into_view_if_needed()
            box = buttons.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (buttons.nth(i).inner_text(), box)
