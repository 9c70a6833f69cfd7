"""The review of a patient-education share names the studies its patient will not be given: those
whose images carry another patient ID than the case's MRN, or none
(``policy.held_back_from_patient``: the patient's portal shows nothing of them, so the staff
making the share are told). Other shares name none: their recipients are given those studies."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from tests.factories import PatientFactory, StudyFactory, member
from tests.patient_links import link_patient_account

pytestmark = pytest.mark.django_db

MRN = "NW-0042"


@pytest.fixture
def studies(org_a, case):
    case.patient = PatientFactory(organization=org_a, mrn=MRN)
    case.save()
    return {
        "own": StudyFactory(organization=org_a, case=case, patient_id=" nw-0042", study_description="Own CT"),
        "other": StudyFactory(organization=org_a, case=case, patient_id="1CT1", study_description="Foreign CT"),
        "none": StudyFactory(organization=org_a, case=case, patient_id="", study_description="Anonymous MR"),
    }


def _held_back(html: str) -> dict[str, str]:
    return {name: reason for reason, name in re.findall(
        r'data-testid="held-back-study" data-reason="([a-z_]+)"><strong>([^<]+)</strong>', html)}


def _review(client, case, form) -> str:
    response = client.post(reverse("sharing:case_share", kwargs={"case_id": case.public_id}), form)
    html = response.content.decode()
    assert response.status_code == 200 and 'name="confirm"' in html
    return html


def test_the_review_of_a_patients_share_lists_the_studies_held_back(org_a, owner, case, studies, client_as):
    patient = member(org_a, Role.PATIENT, email="patient@alpha.example")
    link_patient_account(patient, case.patient, case=case)  # the case's patient's account
    html = _review(client_as(owner), case, {"use_case": "patient_education", "recipient_kind": "user",
                                            "recipient_email": patient.email})
    assert _held_back(html) == {"Foreign CT": "other_patient", "Anonymous MR": "no_patient_id"}
    text = html_lib.unescape(html)
    assert "Not shared with the patient: the patient ID in its images differs from this case's MRN." in text
    assert "Not shared with the patient: its images carry no patient ID." in text


def test_a_share_naming_studies_lists_those_of_them_held_back(org_a, owner, case, studies, client_as):
    patient = member(org_a, Role.PATIENT, email="patient@alpha.example")
    link_patient_account(patient, case.patient, case=case)  # the case's patient's account
    html = _review(client_as(owner), case, {"use_case": "patient_education", "recipient_kind": "user",
                                            "recipient_email": patient.email,
                                            "studies": [studies["own"].pk, studies["none"].pk]})
    assert _held_back(html) == {"Anonymous MR": "no_patient_id"}


def test_the_review_of_a_share_to_a_consultant_holds_nothing_back(case, owner, consultant, studies, client_as):
    html = _review(client_as(owner), case, {"use_case": "second_opinion", "recipient_kind": "user",
                                            "recipient_email": consultant.email})
    assert 'data-testid="held-back-studies"' not in html and _held_back(html) == {}
