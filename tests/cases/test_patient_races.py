"""The same new patient entered twice at once (a double click on "Create case", two coordinators
with the same referral): one patient row, and the second request gets it, not a server error."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from apps.cases import services
from apps.cases.models import Patient
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a unique index wait: PostgreSQL"),
]


def test_the_same_new_patient_entered_twice_at_once_is_one_patient(org_a, clinician_a):
    failures: list[BaseException] = []
    got = []

    def second():
        got.append(
            services.patient_get_or_create(
                organization=org_a, by=clinician_a, mrn="MRN-RACE-1", name="Fictional Patient"
            )
        )

    with transaction.atomic():
        first, created = services.patient_get_or_create(
            organization=org_a, by=clinician_a, mrn="MRN-RACE-1", name="Fictional Patient"
        )
        assert created
        other = in_thread_until_blocked(failures, second)  # waits on the unique index until this commits
    other.join(timeout=30)
    assert failures == []
    assert got == [(first, False)]
    assert Patient.objects.filter(organization=org_a, mrn="MRN-RACE-1").count() == 1


def test_one_mrn_typed_in_other_letters_twice_at_once_is_one_patient(org_a, clinician_a):
    """"mrn-race-2" and " MRN-Race-2" at once: the database's unique index on the MRN's lower-case
    form makes the second wait, then take the first's patient."""
    failures: list[BaseException] = []
    got = []

    def second():
        got.append(services.patient_get_or_create(organization=org_a, by=clinician_a, mrn=" MRN-Race-2",
                                                  name="Fictional Patient"))

    with transaction.atomic():
        first, created = services.patient_get_or_create(organization=org_a, by=clinician_a, mrn="mrn-race-2",
                                                        name="Fictional Patient")
        assert created
        other = in_thread_until_blocked(failures, second)
    other.join(timeout=30)
    assert failures == []
    assert got == [(first, False)]
    assert Patient.objects.filter(organization=org_a).count() == 1
