"""cases 0004: existing MRNs lose the blanks around them and become unique whatever the case of
their letters. Two patients entered as one MRN before ("DEMO-0001" and "demo-0001 ") are both
kept, with their cases: the first entered keeps the MRN, the later one says it is a duplicate."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE, AFTER = [("cases", "0003_attachments")], [("cases", "0004_mrn_case_insensitive")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_colliding_mrns_are_both_kept_and_the_rest_normalised():
    old = _migrate(BEFORE)
    try:
        # organizations' tables are as now (only cases went back): their rows by the current model
        org, other = OrganizationFactory().pk, OrganizationFactory().pk
        Patient, Case = old.get_model("cases", "Patient"), old.get_model("cases", "Case")
        first = Patient.objects.create(organization_id=org, mrn="DEMO-0001", name="Alex Demo")
        second = Patient.objects.create(organization_id=org, mrn="demo-0001 ", name="Maria Different")
        spaced = Patient.objects.create(organization_id=org, mrn=" QF-9 ", name="Quill Feather")
        theirs = Patient.objects.create(organization_id=other, mrn="demo-0001", name="Their Patient")
        case = Case.objects.create(organization_id=org, patient=second, title="Kept")
    finally:
        new = _migrate(AFTER)
    Patient = new.get_model("cases", "Patient")
    mrns = dict(Patient.objects.values_list("pk", "mrn"))
    assert mrns == {first.pk: "DEMO-0001", second.pk: f"demo-0001 (duplicate {second.pk})",
                    spaced.pk: "QF-9", theirs.pk: "demo-0001"}
    assert new.get_model("cases", "Case").objects.get(pk=case.pk).patient_id == second.pk
    assert Patient.objects.get(pk=second.pk).name == "Maria Different"


@pytest.mark.parametrize(("mrn", "other"), [("İD-1", "id-1"), ("ΑΣ-1", "ασ-1")])
def test_mrns_are_counted_as_the_database_folds_them(mrn, other):
    """A reviewer: the migration folded MRNs with Python's lower(), which does not always agree
    with the database's LOWER() that one_mrn_per_org uses ("İD-1" and "ΑΣ-1" fold otherwise), so a
    pair the constraint counts as one was kept and building the constraint failed the deploy. The
    rows are counted as the database counts them (PostgreSQL folds these pairs alike; SQLite's
    LOWER() only ASCII letters, so there they stay two MRNs)."""
    old = _migrate(BEFORE)
    try:
        org = OrganizationFactory().pk
        Patient = old.get_model("cases", "Patient")
        first = Patient.objects.create(organization_id=org, mrn=mrn, name="First Entered")
        second = Patient.objects.create(organization_id=org, mrn=other, name="Second Entered")
    finally:
        new = _migrate(AFTER)
    mrns = dict(new.get_model("cases", "Patient").objects.values_list("pk", "mrn"))
    if connection.vendor == "postgresql":
        assert mrns == {first.pk: mrn, second.pk: f"{other} (duplicate {second.pk})"}
    else:
        assert mrns == {first.pk: mrn, second.pk: other}
