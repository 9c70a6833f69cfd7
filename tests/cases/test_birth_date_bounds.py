"""A patient's birth date has a lower bound (review 23): 0001-01-01 was saved and shown. A date
more than 130 years before today (``models.birth_date_bounds``, decided in one place) is refused
beside the field by every form that takes a patient's birth date (the correction page, the new
case's patient), as a date in the future is; the date inputs carry ``min`` and ``max`` so a
phone's date picker offers only dates accepted."""

from __future__ import annotations

import datetime
import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.cases import services
from apps.cases.models import Case, Patient, birth_date_bounds
from tests.factories import CaseFactory, PatientFactory

pytestmark = pytest.mark.django_db

TOO_EARLY = "The birth date cannot be before"


def _earliest() -> datetime.date:
    today = timezone.localdate()
    try:
        return today.replace(year=today.year - 130)
    except ValueError:
        return today.replace(year=today.year - 130, day=28)


def _birth_date_error(page: str) -> str:
    match = re.search(r'id="id_birth_date_error"[^>]*>(.*?)</div>', page, re.S)
    return match[1] if match else ""


def _date_input(page: str) -> str:
    return re.search(r'<input[^>]*name="birth_date"[^>]*>', page)[0]


@pytest.fixture
def patient(org_a):
    return PatientFactory(organization=org_a, mrn="OLD-1", name="Ann Old", birth_date=None)


@pytest.fixture
def case(org_a, patient):
    return CaseFactory(organization=org_a, patient=patient)


def _edit(case):
    return reverse("cases:patient_edit", kwargs={"case_id": case.public_id})


def test_the_bounds_are_today_and_130_years_before():
    assert birth_date_bounds() == (_earliest(), timezone.localdate())


def test_a_correction_to_a_birth_date_too_long_ago_is_refused_beside_the_field(
        org_a, case, patient, clinician_a, client_as):
    client = client_as(clinician_a)
    for typed in ("0001-01-01", "1062-05-05", (_earliest() - datetime.timedelta(days=1)).isoformat()):
        response = client.post(_edit(case), {"name": "Ann Old", "birth_date": typed})
        assert response.status_code == 400
        assert TOO_EARLY in _birth_date_error(response.content.decode())
    assert Patient.objects.get(pk=patient.pk).birth_date is None
    with pytest.raises(ValidationError) as refused:
        services.patient_update(case=case, by=clinician_a, values={"birth_date": datetime.date(1, 1, 1)})
    assert refused.value.error_dict["birth_date"][0].code == "birth_date_too_early"
    # the earliest date itself is accepted
    assert client.post(_edit(case), {"name": "Ann Old", "birth_date": _earliest().isoformat()}).status_code == 302
    assert Patient.objects.get(pk=patient.pk).birth_date == _earliest()


def test_a_new_patient_born_too_long_ago_is_refused_beside_the_field(org_a, clinician_a, client_as):
    response = client_as(clinician_a).post(reverse("cases:case_create"), {
        "title": "Second opinion", "mrn": "NEW-0009", "patient_name": "Fictional Person", "birth_date": "0001-01-01"})
    assert response.status_code == 400
    assert TOO_EARLY in _birth_date_error(response.content.decode())
    assert not Patient.objects.exists() and not Case.objects.exists()


def test_the_birth_date_inputs_offer_only_the_dates_accepted(case, clinician_a, client_as):
    client = client_as(clinician_a)
    bounds = f'min="{_earliest().isoformat()}"', f'max="{timezone.localdate().isoformat()}"'
    for url in (_edit(case), reverse("cases:case_create")):
        field = _date_input(client.get(url).content.decode())
        assert 'type="date"' in field and all(bound in field for bound in bounds), url
