"""Attaching a study uploaded with no case, on a phone (in Spanish) and a tablet (in English): the
study page's "Attach to a case" (its case list and button) and the confirmation that names whom
the case's shares and tumor boards then reach are finger-sized, fit the screen, and attach the
study; a study an ingest still adds to says why it has no case box, within the screen. Another
patient's images: the confirmation asks for a box to tick before a danger button, and the server
refuses the attach without it, saying why, within the screen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.imaging.models import IngestJob, JobState, Study
from apps.imaging.services import ingest_job_create
from apps.organizations.models import Role
from tests.browser.conftest import PHONE_ES_TABLET_EN, device_page, signed_in_as
from tests.browser.test_touch import _SMALL_CONTROLS, TARGET
from tests.factories import (
    BoardSessionFactory,
    CaseFactory,
    GrantFactory,
    OrganizationFactory,
    StudyFactory,
    member,
)

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
    guest = member(org, Role.EXTERNAL_CONSULTANT, email="board.guest@another-hospital.example")
    board = BoardSessionFactory(organization=org, host=clinician, title="Thoracic oncology tumor board, weekly meeting")
    board.cases.add(case)
    board.participants.add(guest)
    # the case's patient's images: no box to tick (another patient's: the test below)
    study = StudyFactory(organization=org, case=None, study_description="CT abdomen", patient_id=case.patient.mrn)
    busy = StudyFactory(organization=org, case=None, study_description="MR pelvis")
    job = ingest_job_create(organization=org, source_path="/nonexistent", enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    job.studies.add(busy)
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
        assert "Thoracic oncology tumor board" in page.get_by_test_id("attach-boards").inner_text()
        problems += [f"confirmation: {c}" for c in page.evaluate(_SMALL_CONTROLS, TARGET)]
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= viewport[0], f"the confirmation is {wide} px wide"
        page.get_by_test_id("confirm-attach").click()
        page.wait_for_url(f"{live_server.url}{study.get_absolute_url()}")
        # a study an ingest still adds to: why there is no case box, and nothing wider than the screen
        page.goto(f"{live_server.url}{busy.get_absolute_url()}")
        page.get_by_test_id("attach-busy").wait_for()
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= viewport[0], f"the busy study's page is {wide} px wide"
        assert page.locator("#attach-case").count() == 0
        assert not problems, problems
    assert Study.objects.get(pk=study.pk).case_id == case.pk


@pytest.mark.parametrize(("viewport", "language"), PHONE_ES_TABLET_EN)
def test_another_patients_images_need_the_box_ticked_on_a_phone_and_a_tablet(browser, live_server, viewport,
                                                                           language):
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@attach.example", language=language)
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician,
                       title="Chest CT review with a rather long title")
    study = StudyFactory(organization=org, case=None, study_description="CT abdomen", patient_id="OTHER-PATIENT-1")
    with device_page(browser, viewport, language) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(f"{live_server.url}{study.get_absolute_url()}?case={case.public_id}#attach")
        page.get_by_test_id("attach-continue").click()
        page.get_by_test_id("confirm-attach").wait_for()
        page.wait_for_load_state("load")
        box = page.locator("#id_patient_checked")
        assert box.get_attribute("required") is not None and not box.is_checked()
        button = page.get_by_test_id("confirm-attach")
        assert "danger" in (button.get_attribute("class") or "").split()
        assert "primary" not in (button.get_attribute("class") or "").split()
        # the box's label is the finger's target; the page's controls too
        label = page.locator("label[for=id_patient_checked]").bounding_box()
        assert label is not None and label["height"] >= TARGET, label
        problems = [f"confirmation: {c}" for c in page.evaluate(_SMALL_CONTROLS, TARGET)]
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= viewport[0], f"the confirmation is {wide} px wide"
        # not ticked: the browser does not send it
        button.click()
        assert page.url.startswith(f"{live_server.url}{study.get_absolute_url()}attach/")
        assert Study.objects.get(pk=study.pk).case_id is None
        # sent anyway (validation off, as a forged form would): the server refuses it and says why
        page.evaluate("() => document.getElementById('id_patient_checked').removeAttribute('required')")
        button.click()
        page.wait_for_load_state("load")
        error = page.locator("#id_patient_checked_error")
        error.wait_for()
        said = error.inner_text()
        assert ("Nothing was attached." in said) if language == "en" else said.strip()
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= viewport[0], f"the refusal is {wide} px wide"
        assert Study.objects.get(pk=study.pk).case_id is None
        page.locator("label[for=id_patient_checked]").click()  # the label ticks it
        assert page.locator("#id_patient_checked").is_checked()
        page.get_by_test_id("confirm-attach").click()
        page.wait_for_url(f"{live_server.url}{study.get_absolute_url()}")
        assert not problems, problems
    assert Study.objects.get(pk=study.pk).case_id == case.pk
