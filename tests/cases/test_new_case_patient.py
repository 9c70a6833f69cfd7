"""The new-case form and a known MRN (found by QA on the demo). An MRN already recorded, typed
with another name or birth date, silently opened the case for the recorded patient and dropped
what was typed; "demo-0001 " (another case of letters, a blank after it) made a second patient
beside DEMO-0001; a birth date in the future was saved. Now an MRN is one patient whatever the
case of its letters and the blanks around it (stored without those blanks; ``one_mrn_per_org``
counts it by its lower-case form), the form names the patient recorded with it to the staff
typing it and asks to correct the MRN or to confirm that patient, and a future birth date is
refused beside its field."""

from __future__ import annotations

import datetime
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from apps.cases import services
from apps.cases.models import Case, Patient
from apps.imaging.services import attach_patient_ids_differ
from tests.factories import CaseFactory, PatientFactory

pytestmark = pytest.mark.django_db

BORN = datetime.date(1961, 4, 12)


@pytest.fixture
def known(org_a):
    return PatientFactory(organization=org_a, mrn="DEMO-0001", name="Alex Demo", birth_date=BORN)


def _post(client, **values):
    return client.post(reverse("cases:case_create"), {"title": "Second opinion", **values})


def test_a_known_mrn_with_another_name_or_birth_date_is_asked_about_then_confirmed(
        org_a, clinician_a, client_as, known):
    client = client_as(clinician_a)
    for typed in ({"patient_name": "Maria Different", "birth_date": "1990-05-05"},
                  {"patient_name": "Maria Different"}, {"birth_date": "1990-05-05"}):
        response = _post(client, mrn="DEMO-0001", **typed)
        html = response.content.decode()
        assert response.status_code == 400, typed
        assert not Case.objects.exists()
        # the recorded patient named to the staff typing (who may see who patients are)
        assert "already that of Alex Demo, born " + date_format(BORN, "SHORT_DATE_FORMAT") in html
        assert "correct the number, or tick the box below" in html
        box = re.search(r'<input type="checkbox" name="use_existing_patient"[^>]*>', html).group(0)
        assert " checked" not in box
        assert f'name="existing_patient" value="{known.public_id}"' in html
    # confirmed: the case is the recorded patient's, whose record is kept as it was
    confirmed = _post(client, mrn="demo-0001", patient_name="Maria Different", birth_date="1990-05-05",
                      existing_patient=str(known.public_id), use_existing_patient="on")
    assert confirmed.status_code == 302, confirmed.content.decode()[:3000]
    assert Case.objects.get().patient == known
    known.refresh_from_db()
    assert (known.name, known.birth_date, Patient.objects.count()) == ("Alex Demo", BORN, 1)


def test_the_same_details_or_none_open_the_case_without_asking(org_a, clinician_a, client_as, known):
    client = client_as(clinician_a)
    assert _post(client, mrn="DEMO-0001").status_code == 302
    assert _post(client, mrn="DEMO-0001", patient_name="  alex   DEMO ", birth_date="1961-04-12").status_code == 302
    assert list(Case.objects.values_list("patient", flat=True)) == [known.pk, known.pk]


def test_a_box_ticked_for_one_patient_does_not_confirm_another(org_a, clinician_a, client_as, known):
    other = PatientFactory(organization=org_a, mrn="DEMO-0002", name="Robin Sample")
    response = _post(client_as(clinician_a), mrn="DEMO-0002", patient_name="Maria Different",
                     existing_patient=str(known.public_id), use_existing_patient="on")
    assert response.status_code == 400
    html = response.content.decode()
    assert "already that of Robin Sample" in html and f'value="{other.public_id}"' in html
    assert not Case.objects.exists()


@pytest.mark.parametrize("typed", ["demo-0001 ", " Demo-0001", "DEMO-0001\t"])
def test_an_mrn_in_other_letters_or_with_blanks_is_the_known_patient(org_a, clinician_a, client_as, known, typed):
    response = _post(client_as(clinician_a), mrn=typed, patient_name="Alex Demo")
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Patient.objects.count() == 1 and Case.objects.get().patient == known


def test_a_new_mrn_is_stored_without_blanks_and_one_mrn_is_one_patient(org_a, org_b, clinician_a):
    patient, created = services.patient_get_or_create(organization=org_a, by=clinician_a, mrn="  Nw-77 ",
                                                      name="Fictional Person")
    assert created and patient.mrn == "Nw-77"
    again, created = services.patient_get_or_create(organization=org_a, by=clinician_a, mrn="NW-77")
    assert (again, created) == (patient, False)
    with pytest.raises(IntegrityError), transaction.atomic():
        Patient.objects.create(organization=org_a, mrn="nw-77", name="Someone Else")
    Patient.objects.create(organization=org_b, mrn="nw-77", name="Another organization's")  # theirs: allowed


def test_the_patient_lookups_elsewhere_match_an_mrn_alike(org_a, clinician_a, client_as, known):
    CaseFactory(organization=org_a, patient=known, title="Wexcombe review")
    found = client_as(clinician_a).get(reverse("cases:case_list"), {"q": " demo-0001 ", "status": ""})
    assert "Wexcombe review" in found.content.decode()
    # the attach check reads the images' patient ID as the portal reads an MRN
    assert not attach_patient_ids_differ(patient_ids=["demo-0001", " DEMO-0001 "], mrn="DEMO-0001")
    assert attach_patient_ids_differ(patient_ids=["DEMO-0001", "DEMO-0002"], mrn="DEMO-0001")


def test_a_birth_date_in_the_future_is_refused(org_a, clinician_a, client_as):
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    client = client_as(clinician_a)
    for typed in ("2090-01-01", tomorrow.isoformat()):
        response = _post(client, mrn="NEW-0001", patient_name="Fictional Person", birth_date=typed)
        assert response.status_code == 400
        assert "The birth date cannot be in the future." in response.content.decode()
    assert not Patient.objects.exists() and not Case.objects.exists()
    with pytest.raises(ValidationError) as refused:
        services.patient_get_or_create(organization=org_a, by=clinician_a, mrn="NEW-0001", name="Fictional Person",
                                       birth_date=tomorrow)
    assert "birth_date" in refused.value.error_dict
    today = _post(client, mrn="NEW-0001", patient_name="Fictional Person", birth_date=timezone.localdate().isoformat())
    assert today.status_code == 302
