"""Patient identifiers (name, MRN, birth date) never leave the organization in clear: staff see
them, outsiders holding a grant (consultants, tumor-board guests) see the case without them and
cannot find a case by who the patient is."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from tests.factories import CaseFactory, GrantFactory, PatientFactory, StudyFactory, member

pytestmark = pytest.mark.django_db

NAME, MRN, DICOM_NAME, DICOM_ID = "Quentin Zebulon", "MRN-77123", "Zebulon^Quentin", "PID-99881"
# The birth year as a number of its own: a page's random public ids (hex) and the microseconds
# of its times hold the digits "1951" once in a few hundred pages.
PUBLIC_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BIRTH_YEAR = re.compile(r"(?<![0-9a-f])1951(?![0-9a-f])")


@pytest.fixture
def world(org_a):
    patient = PatientFactory(organization=org_a, name=NAME, mrn=MRN, birth_date=datetime.date(1951, 3, 4))
    case = CaseFactory(organization=org_a, patient=patient, title="Nodule follow-up")
    study = StudyFactory(organization=org_a, case=case, patient_name=DICOM_NAME, patient_id=DICOM_ID)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    GrantFactory(organization=org_a, case=case, grantee=consultant, permissions=["view"])
    return case, study, consultant


def _pages(client, case, study):
    return {
        "case": client.get(reverse("cases:case_detail", kwargs={"case_id": case.public_id})),
        "list": client.get(reverse("cases:case_list"), {"status": ""}),
        "study": client.get(reverse("imaging:study_detail", kwargs={"study_id": study.public_id})),
    }


def test_staff_see_the_patient(world, clinician_a, client_as):
    case, study, _ = world
    pages = _pages(client_as(clinician_a), case, study)
    assert all(r.status_code == 200 for r in pages.values())
    assert NAME in pages["case"].content.decode() and MRN in pages["case"].content.decode()
    assert NAME in pages["list"].content.decode()
    assert DICOM_ID in pages["study"].content.decode()
    found = client_as(clinician_a).get(reverse("cases:case_list"), {"q": MRN, "status": ""}).content.decode()
    assert "Nodule follow-up" in found


def test_a_granted_outsider_sees_the_case_without_identifiers(world, client_as):
    case, study, consultant = world
    client = client_as(consultant)
    pages = _pages(client, case, study)
    assert all(r.status_code == 200 for r in pages.values()), {k: r.status_code for k, r in pages.items()}
    for name, response in pages.items():
        body = response.content.decode()
        for secret in (NAME, MRN, DICOM_NAME, DICOM_ID):
            assert secret not in body, f"{secret!r} shown on the {name} page to an outsider"
        assert not BIRTH_YEAR.search(PUBLIC_ID.sub("<id>", body)), f"the birth year shown on the {name} page"
    assert "Nodule follow-up" in pages["case"].content.decode()  # the case itself is shared
    for q in (MRN, "Zebulon"):
        found = client.get(reverse("cases:case_list"), {"q": q, "status": ""}).content.decode()
        assert "Nodule follow-up" not in found, f"search for {q!r} confirmed who the patient is"
