"""A patient-education share every study of which is held back from its patient (their images'
patient ID is not the case's MRN: ``policy.held_back_from_patient``), on a phone (360 px) and a
desktop: the patient's portal says the care team is checking the images and whom to ask, not
"being prepared"; the staff's "Who has access" says the patient sees nothing yet and why. Both
readable in the screen's width, nothing scrolled sideways."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.usecases import RecipientKind, UseCase
from tests.browser.conftest import device_page, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, PatientFactory, StudyFactory, member
from tests.patient_links import link_patient_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [pytest.param((360, 740), id="phone"), pytest.param((1280, 900), id="desktop")]


@pytest.fixture
def held_back_share():
    org = OrganizationFactory(name="Alpha Hospital", slug="alpha", mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN, email="owner@alpha.example", full_name="Casey Clinician")
    patient = member(org, Role.PATIENT, email="pat@alpha.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner,
                       patient=PatientFactory(organization=org, mrn="NW-0042"))
    StudyFactory(organization=org, case=case, patient_id="1CT1", study_description="Foreign CT")
    link_patient_account(patient, case.patient, case=case)  # the case's patient's own account (7011cfe)
    services.share_create(case=case, by=owner, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=patient)
    return owner, patient, case


def _fits(page, locator, width: int) -> None:
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_patient_is_told_the_care_team_checks_the_images(browser, live_server, output_dir, held_back_share,
                                                             viewport):
    _owner, patient, _case = held_back_share
    with device_page(browser, viewport) as page:
        signed_in_as(page, live_server.url, patient)
        page.goto(f"{live_server.url}/portal/")
        message = page.get_by_test_id("education-held-back")
        expect(message).to_contain_text("Your care team is checking these images")
        expect(message).to_contain_text("Alpha Hospital")
        expect(page.get_by_test_id("education-preparing")).to_have_count(0)
        expect(page.get_by_text("Foreign CT")).to_have_count(0)
        _fits(page, message, viewport[0])
        page.screenshot(path=str(output_dir / f"education_held_back_{viewport[0]}.png"), full_page=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_staff_see_the_patient_is_given_nothing_yet(browser, live_server, output_dir, held_back_share,
                                                        viewport):
    owner, _patient, case = held_back_share
    with device_page(browser, viewport) as page:
        signed_in_as(page, live_server.url, owner)
        page.goto(f"{live_server.url}/cases/{case.public_id}/")
        held = page.get_by_test_id("participant-held-back")
        expect(held).to_contain_text("Nothing yet: every study of this share is held back from the patient.")
        expect(held).to_contain_text("The patient ID in their images differs from this case's MRN.")
        held.scroll_into_view_if_needed()
        _fits(page, held, viewport[0])
        # the whole row in view (a card on a phone), its "Until" too, not at the end of a table
        # scrolled sideways
        _fits(page, page.get_by_test_id("participant"), viewport[0])
        page.locator("#participants").screenshot(path=str(output_dir / f"access_held_back_{viewport[0]}.png"))
