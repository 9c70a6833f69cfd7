"""A telehealth physician on a tablet opens an anonymous link that lets them download the
original once (its organization allows the original on anonymous links, and the link asks for a
passcode, as it must then): the shared case page offers the download (a link holder has no study
page to download from), the zip arrives, and once the limit is used the page says so instead of
the button."""

from __future__ import annotations

import zipfile

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import SharingPolicy
from apps.sharing.usecases import RecipientKind, Rendition, UseCase
from tests.browser.conftest import device_context
from tests.browser.test_education import _ready_study
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_anonymous_link_holder_downloads_within_the_limit_on_a_tablet(browser, live_server, output_dir, tmp_path):
    org = OrganizationFactory(name="Alpha Hospital", slug="alpha", mfa_required_roles=[], anonymous_links_enabled=True)
    owner = member(org, Role.CLINICIAN, email="owner@alpha.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, title="Chest CT review")
    _ready_study(org, case, tmp_path / "ct")
    SharingPolicy.objects.update_or_create(organization=org, defaults={"anonymous_allow_original": True})
    grant, _link, raw = services.share_create(
        case=case, by=owner, use_case=UseCase.CUSTOM, recipient_kind=RecipientKind.ANONYMOUS,
        renditions=[Rendition.ORIGINAL, Rendition.PREVIEW], download_limit=1, second_factor="passcode",
        passcode="blue-kettle-42")
    assert grant.download_limit == 1 and "download_original" in grant.permissions

    context = device_context(browser, 768, 1024, accept_downloads=True)
    page = context.new_page()
    page.goto(f"{live_server.url}/s/{raw}/")
    page.get_by_label("Passcode").fill("blue-kettle-42")
    page.get_by_test_id("second-factor-open").click()
    page.wait_for_url(f"{live_server.url}/sharing/cases/{case.public_id}/")
    expect(page.get_by_test_id("renditions")).to_contain_text("Original DICOM")

    button = page.get_by_test_id("download-original")
    expect(button).to_have_text("Download the original DICOM (zip)")
    box = button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 768
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    page.screenshot(path=str(output_dir / "link-downloads-tablet.png"), full_page=True)
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.failure() is None
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    names = zipfile.ZipFile(path).namelist()
    assert any(n.endswith(".dcm") and "/IM" in n for n in names)  # the diagnostic original's files

    # the one download is used: no button any more, and the page says why and what to do
    page.reload()
    expect(page.get_by_test_id("download-original")).to_have_count(0)
    expect(page.get_by_test_id("download-limit-reached")).to_contain_text("Ask the person who shared it")
    context.close()
