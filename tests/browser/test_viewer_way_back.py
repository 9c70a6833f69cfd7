"""The viewer keeps a way back once access ends (found by QA): when the share of an anonymous link
holder in the viewer was revoked, the image was hidden with a clear message but "Back to the
shared case" went away too, leaving no way out but the browser's own. The link now leads where
the reader may still go: the shared case would be a 404 (the link was revoked), so the site's
start; a signed-in recipient's leads to Shared with me (tests/browser/test_viewer_access_ends.py).
Refused the images but not the case (403 "denied"), the shared case still opens: the link stays."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.usecases import RecipientKind, UseCase
from tests.browser.conftest import device_context
from tests.factories import member
from tests.viewer.conftest import make_ct_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHECK_SECONDS = 1
STOPS_WITHIN_MS = 4 * CHECK_SECONDS * 1000


@pytest.fixture(autouse=True)
def _quick_checks(settings):
    settings.LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS = CHECK_SECONDS


def _link_holder_in_the_viewer(browser, live_server, org):
    """An anonymous link holder with the viewer open on a CT of the link's case."""
    org.anonymous_links_enabled = True
    org.mfa_required_roles = []
    org.save()
    owner = member(org, Role.CLINICIAN, email="owner@alpha.example")
    study = make_ct_study(org, owner)
    grant, _link, raw = services.share_create(case=study.case, by=owner, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS)
    context = device_context(browser, 1280, 800)
    page = context.new_page()
    page.goto(f"{live_server.url}/s/{raw}/")
    page.get_by_role("button", name="Open the shared imaging").click()
    shared_case = reverse("sharing:shared_case", kwargs={"case_id": study.case.public_id})
    page.wait_for_url(live_server.url + shared_case)
    page.goto(live_server.url + reverse("viewer:viewer", kwargs={"study_id": study.public_id}))
    expect(page.locator("#viewer")).to_have_attribute("data-shown-quality", "preview")
    back = page.get_by_test_id("viewer-back")
    expect(back).to_have_text("Back to the shared case")
    expect(back).to_have_attribute("href", shared_case)
    return context, page, owner, grant, back, shared_case


def test_a_link_holder_whose_share_is_revoked_keeps_a_way_out_of_the_viewer(browser, live_server, org_a):
    context, page, owner, grant, back, _shared_case = _link_holder_in_the_viewer(browser, live_server, org_a)
    services.grants_revoke(grants=[grant], by=owner, reason="test")
    message = page.get_by_test_id("viewer-message")
    expect(message).to_be_visible(timeout=STOPS_WITHIN_MS)
    expect(message).to_contain_text("Your access to this study has ended")
    # the shared case is no longer theirs (a 404): the way back leads to the site's start
    expect(back).to_be_visible()
    expect(back).to_have_text("Go to the start page")
    expect(back).to_have_attribute("href", reverse("dashboard"))
    with page.expect_navigation() as went:
        back.click()
    assert went.value.ok  # the sign-in page, where the site's start sends a visitor
    context.close()


def test_a_link_holder_refused_the_images_but_not_the_case_goes_back_to_the_shared_case(browser, live_server,
                                                                                      org_a):
    from apps.sharing.models import Grant

    context, page, _owner, grant, back, shared_case = _link_holder_in_the_viewer(browser, live_server, org_a)
    # the share no longer gives the images (the policy: VIEW_IMAGES refused, 403), its case still opens
    Grant.objects.filter(pk=grant.pk).update(permissions=[])
    expect(page.get_by_test_id("viewer-message")).to_be_visible(timeout=STOPS_WITHIN_MS)
    expect(back).to_have_text("Back to the shared case")
    expect(back).to_have_attribute("href", shared_case)
    with page.expect_navigation() as went:
        back.click()
    assert went.value.status == 200 and page.url == live_server.url + shared_case
    context.close()
