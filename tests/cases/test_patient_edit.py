"""A patient's recorded details (name, birth date) are corrected from a case of theirs: a birth
date recorded in the future (before such dates were refused, or imported) is marked "to be
corrected" on the case page (1a9a8c8), and no page let anyone correct it. Whoever may edit the
case (MANAGE_CASE) and see who its patient is corrects them (``services.patient_update``,
/cases/<id>/patient/); a future date is refused; the change is recorded as ``patient.updated``
with the names of the fields, never their values. The MRN is not editable here.

Actors: a clinician, a coordinator and an org admin of the organization (who may edit cases),
an outside consultant with a live share of the case (who sees it, not its patient), a member of
another organization."""

from __future__ import annotations

import datetime
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cases import services
from apps.cases.models import Patient
from apps.organizations.models import Role
from apps.sharing.services import grant_create
from tests.factories import CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db

NAME = "Fictional Person"
FUTURE_REFUSED = "The birth date cannot be in the future."
MARK = 'data-testid="birth-date-needs-correction"'


@pytest.fixture
def future():
    return timezone.localdate() + datetime.timedelta(days=40)


@pytest.fixture
def patient(org_a, future):
    return PatientFactory(organization=org_a, mrn="FUT-0002", name=NAME, birth_date=future)


@pytest.fixture
def case(org_a, patient):
    return CaseFactory(organization=org_a, patient=patient, title="Second opinion, left knee")


def _edit(case):
    return reverse("cases:patient_edit", kwargs={"case_id": case.public_id})


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.COORDINATOR, Role.ORG_ADMIN, Role.RADIOLOGIST])
def test_whoever_may_edit_the_case_corrects_the_birth_date_and_the_mark_goes(org_a, case, patient, client_as,
                                                                              role):
    client = client_as(member(org_a, role))
    page = client.get(case.get_absolute_url()).content.decode()
    # the mark, and the patient shown, lead to the correction
    assert MARK in page and f'href="{_edit(case)}"' in page and "Correct patient details" in page

    form = client.get(_edit(case))
    text = form.content.decode()
    assert form.status_code == 200 and "FUT-0002" in text and NAME in text
    assert "The recorded birth date is in the future" in text
    born = datetime.date(1961, 3, 14)
    response = client.post(_edit(case), {"name": "  Fictional  Persona ", "birth_date": born.isoformat()})
    assert response.status_code == 302 and response["Location"] == case.get_absolute_url()
    patient.refresh_from_db()
    assert (patient.name, patient.birth_date, patient.mrn) == ("Fictional  Persona", born, "FUT-0002")
    page = client.get(case.get_absolute_url()).content.decode()
    assert MARK not in page and "Patient details saved." in page


def test_a_future_birth_date_is_refused_with_a_clear_message_and_nothing_changes(
        org_a, case, patient, clinician_a, client_as, future):
    client = client_as(clinician_a)
    for typed in (future, timezone.localdate() + timedelta(days=1)):  # the recorded one too: it is to correct
        response = client.post(_edit(case), {"name": NAME, "birth_date": typed.isoformat()})
        assert response.status_code == 400
        text = response.content.decode()
        assert FUTURE_REFUSED in text
        assert "The recorded birth date is in the future" in text  # the record as stored, not as typed
    response = client.post(_edit(case), {"name": "   ", "birth_date": ""})
    assert response.status_code == 400
    patient.refresh_from_db()
    assert (patient.name, patient.birth_date) == (NAME, future)
    assert not AuditEvent.objects.filter(action="patient.updated").exists()
    with pytest.raises(ValidationError) as refused:
        services.patient_update(case=case, by=clinician_a, values={"birth_date": future + timedelta(days=1)})
    assert refused.value.message_dict == {"birth_date": [FUTURE_REFUSED]}
    with pytest.raises(ValidationError) as refused:
        services.patient_update(case=case, by=clinician_a, values={"name": " "})
    assert refused.value.message_dict == {"name": ["Enter the patient's name."]}
    with pytest.raises(ValueError):
        services.patient_update(case=case, by=clinician_a, values={"mrn": "OTHER-1"})


def test_an_empty_birth_date_is_accepted_when_it_is_not_known(org_a, case, patient, clinician_a, client_as):
    response = client_as(clinician_a).post(_edit(case), {"name": NAME, "birth_date": ""})
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.birth_date is None and not patient.birth_date_needs_correction


def test_the_correction_is_audited_by_field_name_only(org_a, case, patient, clinician_a):
    born = datetime.date(1970, 1, 2)
    changed = services.patient_update(case=case, by=clinician_a, values={"name": NAME, "birth_date": born})
    assert changed == ["birth_date"]
    event = AuditEvent.objects.get(action="patient.updated")
    assert (event.actor, event.organization_id, event.outcome) == (clinician_a, org_a.pk, "allowed")
    assert (event.target_type, event.target_id) == ("patient", str(patient.public_id))
    assert event.case_ref == case.public_id
    assert event.details == {"fields": ["birth_date"]}
    assert "1970" not in str(event.details) and NAME not in str(event.details)
    # nothing changed, nothing recorded
    assert services.patient_update(case=case, by=clinician_a, values={"name": NAME, "birth_date": born}) == []
    assert AuditEvent.objects.filter(action="patient.updated").count() == 1


def test_a_consultant_who_sees_the_case_may_not_correct_its_patient(org_a, case, patient, clinician_a, client_as,
                                                                     future):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    grant_create(case=case, grantee=consultant, permissions=["view"], by=clinician_a,
                 expires_at=timezone.now() + timedelta(days=1))
    client = client_as(consultant)
    page = client.get(case.get_absolute_url())
    assert page.status_code == 200 and _edit(case) not in page.content.decode()
    assert client.get(_edit(case)).status_code == 403
    assert client.post(_edit(case), {"name": "Changed", "birth_date": "1960-01-01"}).status_code == 403
    with pytest.raises(PermissionDenied):
        services.patient_update(case=case, by=consultant, values={"name": "Changed"})
    patient.refresh_from_db()
    assert (patient.name, patient.birth_date) == (NAME, future)
    assert AuditEvent.objects.filter(action="access.denied", actor=consultant).exists()
    assert not AuditEvent.objects.filter(action="patient.updated").exists()


def test_another_organizations_member_gets_a_404(org_a, org_b, case, patient, client_as, future):
    outsider = member(org_b, Role.CLINICIAN)
    client = client_as(outsider)
    assert client.get(_edit(case)).status_code == 404
    assert client.post(_edit(case), {"name": "Changed", "birth_date": "1960-01-01"}).status_code == 404
    with pytest.raises(PermissionDenied):
        services.patient_update(case=case, by=outsider, values={"name": "Changed"})
    patient.refresh_from_db()
    assert (patient.name, patient.birth_date) == (NAME, future)
    assert Patient.objects.get(pk=patient.pk).mrn == "FUT-0002"
