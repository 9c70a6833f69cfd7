"""On a phone, an anonymous link's holder whose organization stopped allowing the original DICOM
on anonymous links is told so by the download's page (review 21), readable without sideways
scrolling, with a finger-sized way back to the shared case."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import SharingPolicy
from apps.sharing.usecases import RecipientKind, UseCase
from tests.browser.conftest import device_page
from tests.factories import LINK_PASSCODE, CaseFactory, OrganizationFactory, anonymous_original_terms, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_link_holder_refused_the_original_reads_why_on_a_phone(browser, live_server):
    org = OrganizationFactory(mfa_required_roles=[], anonymous_links_enabled=True)
    clinician = member(org, Role.CLINICIAN, email="clinician@refused.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    _grant, _link, raw = services.share_create(case=case, by=clinician, use_case=UseCase.CUSTOM,
                                               recipient_kind=RecipientKind.ANONYMOUS, renditions=["original"],
                                               **anonymous_original_terms(org))
    with device_page(browser, (390, 844)) as page:
        page.goto(f"{live_server.url}/s/{raw}/")
        page.get_by_label("Passcode").fill(LINK_PASSCODE)
        page.get_by_test_id("second-factor-open").tap()
        page.wait_for_url(f"{live_server.url}/sharing/cases/{case.public_id}/")
        SharingPolicy.objects.filter(organization=org).update(anonymous_allow_original=False)
        refused = page.goto(f"{live_server.url}/cases/{case.public_id}/download/?rendition=original")
        assert refused.status == 403
        expect(page.get_by_test_id("original-not-on-link")).to_contain_text(
            "does not allow the original DICOM on this anonymous link")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        back = page.get_by_test_id("way-back")
        box = back.bounding_box()
        assert box is not None and box["height"] >= 44
        back.tap()
        page.wait_for_url(f"{live_server.url}/sharing/cases/{case.public_id}/")
