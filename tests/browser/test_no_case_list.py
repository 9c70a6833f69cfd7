"""The upload page's "Studies in no case" on a phone (in Spanish) and a tablet (in English): a
radiologist finds the study a colleague uploaded with no case, its link a finger-sized target,
the list no wider than the screen, nothing axe-core finds; the link opens the study page at its Attach to a case."""

from __future__ import annotations

import pytest

from apps.imaging.models import JobState
from apps.organizations.models import Role
from tests.browser.conftest import PHONE_ES_TABLET_EN, device_page, signed_in_as
from tests.browser.test_accessibility import _axe_violations
from tests.browser.test_touch import TARGET
from tests.factories import CaseFactory, IngestJobFactory, OrganizationFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_a_colleague_finds_a_study_in_no_case_on_a_phone_and_a_tablet(browser, live_server, viewport, language):
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="a.clinician.with.a.long.address@northwind-test.example",
                       full_name="Alexandra Constantinopoulou-Fairweather")
    radiologist = member(org, Role.RADIOLOGIST, email="radiologist@no-case.example", language=language)
    CaseFactory(organization=org, title="Abdominal pain follow-up")
    job = IngestJobFactory(organization=org, created_by=clinician, state=JobState.DONE)  # its upload finished
    study = StudyFactory(organization=org, case=None, created_by_job=job, total_bytes=52_428_800,
                         study_description="CT abdomen and pelvis with contrast, outside hospital",
                         modalities="CT,SR", patient_name="Example^Patient^Middle", patient_id="MRN-0000012345")
    job.studies.add(study)
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, radiologist)
        page.goto(f"{live_server.url}/studies/upload/")
        row = page.get_by_test_id("no-case-study")
        assert row.count() == 1
        assert "Alexandra Constantinopoulou-Fairweather" in row.inner_text()
        link = row.get_by_role("link")
        height = link.bounding_box()["height"]
        assert height >= TARGET, f"the study's link is {height} px high"
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= viewport[0], f"the upload page is {wide} px wide"
        assert not _axe_violations(page)
        link.click()
        page.wait_for_url(f"{live_server.url}{study.get_absolute_url()}#attach")
        assert page.get_by_test_id("attach-continue").is_visible()
