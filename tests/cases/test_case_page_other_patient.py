"""The case page says which of its studies hold images whose patient ID is not the case's MRN
(found by QA: the demo case of Alex Demo, MRN DEMO-0001, listed studies of "ID 1CT1" and only
each study's page showed it). The rule is the attach confirmation's
(``apps.imaging.services.attach_patient_ids_differ``: blanks and the case of letters aside); each
such study is flagged in the Studies table and the section warns of them at its top, for whoever
sees the case's patient (VIEW_PATIENT_IDENTITY, the policy's): a granted outsider, from whom the
patient is hidden, is shown neither the flags nor the warning (found by QA), nor the IDs."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from tests.factories import CaseFactory, GrantFactory, PatientFactory, StudyFactory, member

pytestmark = pytest.mark.django_db

MRN, OTHER_ID = "DEMO-0001", "1CT1"


@pytest.fixture
def case(org_a):
    patient = PatientFactory(organization=org_a, name="Alex Demo", mrn=MRN)
    case = CaseFactory(organization=org_a, patient=patient, title="Chest follow-up")
    # the case's patient, written with other blanks and letters' case: the same MRN, not flagged
    StudyFactory(organization=org_a, case=case, patient_id=" demo-0001 ", study_description="Own CT")
    StudyFactory(organization=org_a, case=case, patient_id=OTHER_ID, study_description="Foreign CT")
    return case


def _page(client, case):
    response = client.get(reverse("cases:case_detail", kwargs={"case_id": case.public_id}))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def _rows(body: str) -> dict[str, str]:
    rows = body.split('data-testid="study"')[1:]
    return {("Foreign CT" if "Foreign CT" in row else "Own CT"): row.split("</tr>")[0] for row in rows}


def test_staff_see_the_studies_of_another_patient_flagged_with_their_id(case, clinician_a, client_as):
    body = _page(client_as(clinician_a), case)
    assert 'data-testid="other-patient-studies"' in body
    assert "The patient ID in the images of 1 study differs from this case's MRN." in body
    rows = _rows(body)
    assert set(rows) == {"Own CT", "Foreign CT"}
    assert 'data-testid="study-other-patient"' in rows["Foreign CT"]
    assert "Patient ID in the images differs from this case's MRN" in rows["Foreign CT"]
    assert f"ID in the images: {OTHER_ID}" in rows["Foreign CT"]
    assert 'data-testid="study-other-patient"' not in rows["Own CT"]


def test_a_granted_outsider_is_shown_no_patient_id_flag_nor_warning(case, org_a, client_as):
    StudyFactory(organization=org_a, case=case, patient_id="", study_description="Anonymous CT")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    GrantFactory(organization=org_a, case=case, grantee=consultant, permissions=["view"])
    body = _page(client_as(consultant), case)
    assert body.count('data-testid="study"') == 3  # the studies themselves are listed
    for testid in ("other-patient-studies", "no-patient-id-studies", "study-other-patient", "study-no-patient-id",
                   "study-images-patient-id"):
        assert f'data-testid="{testid}"' not in body
    assert "patient ID" not in body and "Patient ID" not in body
    assert OTHER_ID not in body and MRN not in body


def test_staff_are_warned_of_a_study_with_no_patient_id_too(case, org_a, clinician_a, client_as):
    StudyFactory(organization=org_a, case=case, patient_id="", study_description="Anonymous CT")
    body = _page(client_as(clinician_a), case)
    assert 'data-testid="other-patient-studies"' in body and 'data-testid="no-patient-id-studies"' in body
    assert 'data-testid="study-other-patient"' in body and 'data-testid="study-no-patient-id"' in body


def test_a_case_whose_images_are_its_patients_warns_of_nothing(org_a, clinician_a, client_as):
    patient = PatientFactory(organization=org_a, mrn=MRN)
    case = CaseFactory(organization=org_a, patient=patient)
    StudyFactory(organization=org_a, case=case, patient_id=MRN.lower())
    body = _page(client_as(clinician_a), case)
    assert 'data-testid="study"' in body
    assert 'data-testid="other-patient-studies"' not in body and 'data-testid="study-other-patient"' not in body


def test_the_warning_counts_the_studies_of_every_page(case, org_a, clinician_a, client_as, monkeypatch):
    StudyFactory(organization=org_a, case=case, patient_id="2MR2", study_description="Foreign MR")
    monkeypatch.setattr("apps.cases.views.STUDIES_PAGE_SIZE", 1)
    body = _page(client_as(clinician_a), case)
    assert body.count('data-testid="study"') == 1
    assert "The patient ID in the images of 2 studies differs from this case's MRN." in body


def test_a_study_with_no_patient_id_is_told_apart_from_another_patients(case, org_a, clinician_a, client_as):
    """Found by QA: a study whose images carry no patient ID at all was flagged "Patient ID in
    the images differs from this case's MRN" with "ID in the images: —". It gets its own badge
    and its own count; the study of another patient keeps the differs flag."""
    StudyFactory(organization=org_a, case=case, patient_id="", study_description="Anonymous CT")
    StudyFactory(organization=org_a, case=case, patient_id="  ", study_description="Blank CT")
    body = _page(client_as(clinician_a), case)
    rows = {row.split("</tr>")[0].split("Untitled")[0]: row.split("</tr>")[0]
            for row in body.split('data-testid="study"')[1:]}
    rows = {name: next(r for r in rows.values() if name in r) for name in ("Anonymous CT", "Blank CT", "Foreign CT")}
    for name in ("Anonymous CT", "Blank CT"):
        assert 'data-testid="study-no-patient-id"' in rows[name]
        assert "The images carry no patient ID" in rows[name]
        assert 'data-testid="study-other-patient"' not in rows[name]
        assert "ID in the images: —" not in rows[name]
    assert 'data-testid="study-other-patient"' in rows["Foreign CT"]
    assert 'data-testid="study-no-patient-id"' not in rows["Foreign CT"]
    assert "The patient ID in the images of 1 study differs from this case's MRN." in body
    assert "The images of 2 studies carry no patient ID." in body
