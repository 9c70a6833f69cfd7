"""One rule for "this MRN" (found by review). The attach check folded MRNs in Python
(``mrn_key``) while the lookups and ``one_mrn_per_org`` used the database's LOWER(), which folds
some letters otherwise: on PostgreSQL "İD-1" was "id-1" for the database and not for the attach
check, and "ΑΣ-1" was "ας-1" for the attach check and not for the database; SQLite's LOWER()
folds ASCII letters only ("É-1" was not "é-1"). MRNs are now matched and counted by
``Patient.mrn_key``, computed by ``mrn_key`` in Python, on every database alike."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from apps.cases import selectors, services
from apps.cases.models import Case, Patient, mrn_key
from apps.imaging.services import attach_patient_ids_differ
from tests.factories import CaseFactory, PatientFactory

pytestmark = pytest.mark.django_db

PAIRS = [  # (recorded, typed, one MRN?)
    ("ΑΣ-1", "ας-1", True),        # PostgreSQL: LOWER gives "ασ-1" and "ας-1"
    ("ΑΣ-1", "ασ-1", True),        # Python's lower() gave "ας-1" and "ασ-1"
    ("İD-1", "id-1", False),       # PostgreSQL: LOWER gives "id-1"; Python "i̇d-1" (a dot kept)
    ("É-1", "é-1", True),          # SQLite: LOWER leaves "É"
    ("STRASSE-1", "straße-1", True),
    ("DEMO-0001", " demo-0001 ", True),
    ("DEMO-0001", "DEMO-0002", False),
]


@pytest.mark.parametrize(("recorded", "typed", "same"), PAIRS)
def test_the_lookups_the_constraint_and_the_attach_check_agree(org_a, clinician_a, recorded, typed, same):
    patient = PatientFactory(organization=org_a, mrn=recorded, name="Fictional Person")
    case = CaseFactory(organization=org_a, patient=patient, title="Wexcombe review")
    assert patient.mrn_key == mrn_key(recorded)
    # the lookup and the case search (by the database) ...
    assert list(Patient.objects.for_org(org_a.pk).with_mrn(typed)) == ([patient] if same else [])
    found = Case.objects.filter(selectors.case_search_match(user=clinician_a, organization=org_a, q=typed))
    assert list(found) == ([case] if same else [])
    # ... the attach check (in Python) ...
    assert attach_patient_ids_differ(patient_ids=[typed], mrn=patient.mrn) is not same
    # ... and the constraint say the same
    if same:
        with pytest.raises(IntegrityError), transaction.atomic():
            Patient.objects.create(organization=org_a, mrn=typed, name="Someone Else")
    got, created = services.patient_get_or_create(organization=org_a, by=clinician_a, mrn=typed,
                                                  name="Fictional Person")
    assert (got == patient, created) == (same, not same)


def test_the_key_follows_the_mrn_however_the_row_is_saved(org_a):
    patient = PatientFactory(organization=org_a, mrn="AB-1")
    patient.mrn = "ΑΣ-2"
    patient.save(update_fields=["mrn"])
    assert Patient.objects.get(pk=patient.pk).mrn_key == mrn_key("ας-2")
    [bulk] = Patient.objects.bulk_create([Patient(organization=org_a, mrn="CD-3", name="Fictional Person")])
    assert Patient.objects.get(pk=bulk.pk).mrn_key == "cd-3"
