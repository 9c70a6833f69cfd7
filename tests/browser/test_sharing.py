"""Sharing in two browsers: a clinician shares a case in a few steps (template, recipient, scope,
expiry, confirm), the consultant opens the link signed in and asks for the original DICOM, the
clinician approves it, extends the share with a written reason and revokes it in one click; the
consultant is refused on the next request. "My shares" fits a phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing.models import Grant, GrantExtension, OriginalRequest
from tests.browser.conftest import _only_local, sign_in
from tests.factories import TEST_PASSWORD, CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _new_page(browser, width=1280):
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-US")
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    return context, context.new_page()


def test_share_open_request_original_extend_revoke(browser, live_server, output_dir):
    org = OrganizationFactory(name="Alpha Hospital", slug="alpha", mfa_required_roles=[])  # about sharing, not sign-in
    owner = member(org, Role.CLINICIAN, email="owner@alpha.example")
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, title="Chest CT review")
    base = live_server.url

    owner_ctx, sharer = _new_page(browser)
    share_path = f"/sharing/cases/{case.public_id}/share/"
    sign_in(sharer, base, owner.email, then=share_path)
    # 1-4: template, recipient, (scope: whole case), expiry left at the template's default
    sharer.get_by_label("1. What is this share for?").select_option("second_opinion")
    sharer.get_by_label("2. Who receives it?").select_option("user")
    sharer.get_by_label("Recipient's e-mail address").fill(consultant.email)
    sharer.get_by_role("button", name="Review the share").click()
    # 5: confirm
    # the same address answers the POST: wait for the confirmation page, do not just look once
    expect(sharer.get_by_role("heading", name="5. Confirm the share")).to_be_visible()
    sharer.get_by_role("button", name="Confirm and share").click()
    link = sharer.get_by_test_id("share-url").input_value()
    assert re.match(rf"{re.escape(base)}/s/[A-Za-z0-9_-]{{43}}/$", link)
    grant = Grant.objects.get()
    Grant.objects.filter(pk=grant.pk).update(permissions=["view", "download_preview"], renditions=["preview"])

    # the consultant opens the link: sign-in first, then the shared case
    consultant_ctx, reader = _new_page(browser)
    reader.goto(link)
    reader.get_by_test_id("link-sign-in-button").click()  # the link's page says to sign in
    reader.wait_for_url("**/accounts/login/**")
    reader.get_by_label("E-mail address").fill(consultant.email)
    reader.get_by_label("Password").fill(TEST_PASSWORD)
    reader.get_by_role("button", name="Sign in").click()
    reader.wait_for_url(f"{base}/sharing/cases/{case.public_id}/")
    expect(reader.get_by_role("heading", name="Chest CT review")).to_be_visible()
    assert "Original DICOM" not in reader.get_by_test_id("renditions").inner_text()
    # ... and asks for the original DICOM
    reader.get_by_role("link", name="Request the original DICOM").click()
    reader.get_by_label("Why do you need the original DICOM?").fill("Volumetry needs the thin-slice series.")
    reader.get_by_role("button", name="Send the request").click()
    reader.wait_for_url(f"{base}/sharing/received/")
    # while it waits for a decision the case says so, and does not offer to ask again (on a tablet too)
    expect(reader.get_by_test_id("original-request-pending")).to_be_visible()
    reader.set_viewport_size({"width": 768, "height": 1024})
    reader.goto(f"{base}/sharing/cases/{case.public_id}/")
    expect(reader.get_by_test_id("original-request-pending")).to_contain_text("waiting for a decision")
    expect(reader.get_by_test_id("request-original")).to_have_count(0)
    assert reader.evaluate("document.documentElement.scrollWidth") <= 768
    reader.screenshot(path=str(output_dir / "original-request-pending-tablet.png"), full_page=True)
    reader.set_viewport_size({"width": 1280, "height": 900})

    # the owner sees the request in "My shares" and approves it for 6 hours
    sharer.goto(f"{base}/sharing/")
    sharer.get_by_role("link", name=re.compile("consultant@alpha.example")).click()
    sharer.get_by_role("radio", name="Approve").check()
    sharer.get_by_label("Approve for (hours)").fill("6")
    sharer.get_by_role("button", name="Record the decision").click()
    sharer.wait_for_url(f"{base}/sharing/")
    assert OriginalRequest.objects.get().status == "approved"
    reader.goto(f"{base}/sharing/received/")
    expect(reader.get_by_test_id("notifications").get_by_text("approved for 6 hours")).to_be_visible()
    reader.goto(f"{base}/sharing/cases/{case.public_id}/")
    assert "Original DICOM" in reader.get_by_test_id("renditions").inner_text()

    # extend the share with a written reason
    row = sharer.locator(f'tr[data-grant="{grant.public_id}"]')
    row.get_by_role("link", name=re.compile("Extend")).click()
    grant.refresh_from_db()
    later = grant.expires_at.astimezone().replace(tzinfo=None)
    sharer.get_by_label("New expiry").fill(f"{later:%Y-%m-%d}T{(later.hour + 1) % 24:02d}:00"
                                           if later.hour < 23 else f"{later:%Y-%m-%dT%H}:59")
    sharer.get_by_label("Reason for the extension").fill("Consultant needs one more day.")
    sharer.get_by_role("button", name="Extend").click()
    sharer.wait_for_url(f"{base}/sharing/")
    assert GrantExtension.objects.filter(grant=grant, reason="Consultant needs one more day.").exists()

    # revoke, asked a second time (a mis-tap took the access away); the consultant is refused on
    # the next request
    sharer.locator(f'tr[data-grant="{grant.public_id}"]').get_by_role("link", name=re.compile("Revoke")).click()
    expect(sharer.get_by_test_id("revoke-confirm")).to_be_visible()
    grant.refresh_from_db()
    assert grant.revoked_at is None
    sharer.get_by_role("button", name="Revoke access").click()
    # "My shares" reloads at the same address: wait for the new state rather than read the old row
    expect(sharer.locator(f'tr[data-grant="{grant.public_id}"]').get_by_test_id("state")).to_have_text("Revoked")
    reader.goto(link)
    expect(reader.get_by_test_id("link-refused")).to_be_visible()

    # "My shares" on a phone: no sideways scrolling of the page
    phone_ctx, phone = _new_page(browser, width=390)
    sign_in(phone, base, owner.email, then="/sharing/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(output_dir / "my-shares-phone.png"), full_page=True)
    for ctx in (owner_ctx, consultant_ctx, phone_ctx):
        ctx.close()


def test_an_anonymous_link_opens_on_a_phone_only_when_its_button_is_pressed(browser, live_server, output_dir):
    """A one-use anonymous link: the page its address shows (what a mail gateway's pre-fetch
    gets) uses nothing and fits a phone and a tablet; pressing its button opens the shared case.
    Once used, the link is refused."""
    from apps.sharing import services
    from apps.sharing.models import ShareLink
    from apps.sharing.usecases import RecipientKind, UseCase
    from tests.browser.test_accessibility import _axe_violations

    org = OrganizationFactory(name="Alpha Hospital", slug="alpha", mfa_required_roles=[], anonymous_links_enabled=True)
    owner = member(org, Role.CLINICIAN, email="owner@alpha.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, title="Chest CT review")
    _grant, link, raw = services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS, max_uses=1)
    url = f"{live_server.url}/s/{raw}/"

    tablet_ctx, tablet = _new_page(browser, width=768)
    tablet.set_viewport_size({"width": 768, "height": 1024})
    tablet.goto(url)  # as a mail gateway would, before the recipient
    expect(tablet.get_by_role("heading", name="Imaging shared with you")).to_be_visible()
    assert tablet.evaluate("document.documentElement.scrollWidth") <= 768
    assert not _axe_violations(tablet)
    tablet.screenshot(path=str(output_dir / "link-confirm-tablet.png"), full_page=True)
    assert ShareLink.objects.get(pk=link.pk).use_count == 0

    phone_ctx, phone = _new_page(browser, width=390)
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(url)
    expect(phone.get_by_text("Alpha Hospital shared medical imaging with you")).to_be_visible()
    assert "Chest CT review" not in phone.content()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert not _axe_violations(phone)
    button = phone.get_by_role("button", name="Open the shared imaging")
    box = button.bounding_box()
    assert box is not None and box["height"] >= 40 and box["x"] + box["width"] <= 390
    phone.screenshot(path=str(output_dir / "link-confirm-phone.png"), full_page=True)
    assert ShareLink.objects.get(pk=link.pk).use_count == 0
    button.click()
    phone.wait_for_url(f"{live_server.url}/sharing/cases/{case.public_id}/")
    expect(phone.get_by_role("heading", name="Chest CT review")).to_be_visible()
    expect(phone.get_by_test_id("anonymous-banner")).to_be_visible()
    assert ShareLink.objects.get(pk=link.pk).use_count == 1

    tablet.goto(url)  # used up now
    expect(tablet.get_by_test_id("link-refused")).to_have_attribute("data-reason", "used_up")
    for ctx in (tablet_ctx, phone_ctx):
        ctx.close()
