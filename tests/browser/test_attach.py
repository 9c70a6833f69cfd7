"""Attaching a study uploaded with no case, on a phone (in Spanish) and a tablet (in English): the
study page's "Attach to a case" (its case list and button) and the confirmation that names whom
the case's shares then reach are finger-sized, fit the screen, and attach the study."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.imaging.models import Study
from apps.organizations.models import Role
from tests.browser.conftest import PHONE_ES_TABLET_EN, device_page, signed_in_as
from tests.browser.test_touch import _SMALL_CONTROLS, TARGET
from tests.factories import CaseFactory, GrantFactory, OrganizationFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_attaching_a_study_on_a_phone_and_a_tablet(browser, live_server, viewport, language):
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@attach.example", language=language)
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="a.long.consultant.address@another-hospital.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician,
                       title="Chest CT review with a rather long title")
    GrantFactory(organization=org, case=case, created_by=clinician, grantee=consultant,
                 expires_at=timezone.now() + timedelta(days=2))
    study = StudyFactory(organization=org, case=None, study_description="CT abdomen")
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}{study.get_absolute_url()}")
        problems = [f"study page: {c}" for c in page.evaluate(_SMALL_CONTROLS, TARGET)]
        page.locator("#attach-case").select_option(str(case.public_id))  # none is chosen for the user
        page.get_by_test_id("attach-continue").click()
        page.get_by_test_id("confirm-attach").wait_for()
        page.wait_for_load_state("load")  # its stylesheet applied before anything is measured
        reaches = page.get_by_test_id("attach-reaches").inner_text()
        assert "a.long.consultant.address@another-hospital.example" in reaches
        problems += [f"confirmation: {c}" for c in page.evaluate(_SMALL_CONTROLS, TARGET)]
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= viewport[0], f"the confirmation is {wide} px wide"
        page.get_by_test_id("confirm-attach").click()
        page.wait_for_url(f"{live_server.url}{study.get_absolute_url()}")
        assert not problems, problems
    assert Study.objects.get(pk=study.pk).case_id == case.pk
