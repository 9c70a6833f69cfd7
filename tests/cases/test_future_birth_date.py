"""A patient recorded with a birth date in the future (before such dates were refused, or
imported) (found by review): the new-case form refused the patient's own birth date typed as
recorded ("The birth date cannot be in the future."), so no case could be opened for them with it
until it was corrected. A date in the future is refused only when it is entered (a new patient,
or a date that is not the recorded one); the recorded one is shown on the case page as one to
correct."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.cases.models import Case, Patient
from tests.factories import CaseFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def future():
    return timezone.localdate() + datetime.timedelta(days=40)


@pytest.fixture
def recorded(org_a, future):
    return PatientFactory(organization=org_a, mrn="FUT-0001", name="Fictional Person", birth_date=future)


def _post(client, **values):
    return client.post(reverse("cases:case_create"), {"title": "Second opinion", **values})


def test_the_recorded_future_birth_date_does_not_refuse_a_case_for_the_patient(
        org_a, clinician_a, client_as, recorded, future):
    client = client_as(clinician_a)
    response = _post(client, mrn="fut-0001", patient_name="Fictional Person", birth_date=future.isoformat())
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Case.objects.get().patient == recorded
    # another date in the future is still refused (entered, not the record's)
    other = _post(client, mrn="FUT-0001", birth_date=(future + datetime.timedelta(days=1)).isoformat())
    assert other.status_code == 400
    assert "The birth date cannot be in the future." in other.content.decode()
    assert Case.objects.count() == 1
    recorded.refresh_from_db()
    assert recorded.birth_date == future and Patient.objects.count() == 1


def test_the_case_page_shows_a_future_birth_date_as_one_to_correct(org_a, clinician_a, client_as, recorded):
    case = CaseFactory(organization=org_a, patient=recorded, title="Wexcombe review")
    client = client_as(clinician_a)
    page = client.get(case.get_absolute_url()).content.decode()
    assert 'data-testid="birth-date-needs-correction"' in page
    edited = client.post(reverse("cases:case_edit", kwargs={"case_id": case.public_id}), {"title": "Renamed"})
    assert edited.status_code == 302
    recorded.birth_date = timezone.localdate()
    recorded.save()
    assert 'data-testid="birth-date-needs-correction"' not in client.get(case.get_absolute_url()).content.decode()
