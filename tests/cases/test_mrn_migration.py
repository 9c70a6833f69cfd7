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
KEYED = [("cases", "0005_patient_mrn_key")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def _latest_after():
    """The tables left as the later tests expect them: every migration applied."""
    yield
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


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


def test_mrns_one_by_the_python_key_are_both_kept():
    """cases 0005: ``one_mrn_per_org`` on ``mrn_key`` (Python's fold) instead of LOWER(). Rows
    that LOWER() kept apart and the key makes one MRN ("ΑΣ-1" and "ας-1", "STRASSE-1" and
    "straße-1"; on SQLite "É-1" and "é-1") are both kept, as 0004 kept them: the later one says
    it is a duplicate; every row gets its key."""
    old = _migrate(AFTER)
    pairs = [("ΑΣ-1", "ας-1"), ("STRASSE-1", "straße-1")]
    if connection.vendor != "postgresql":
        pairs.append(("É-1", "é-1"))
    try:
        org, other = OrganizationFactory().pk, OrganizationFactory().pk
        Patient = old.get_model("cases", "Patient")
        rows = [(Patient.objects.create(organization_id=org, mrn=first, name="First Entered").pk,
                 Patient.objects.create(organization_id=org, mrn=later, name="Later Entered").pk, first, later)
                for first, later in pairs]
        theirs = Patient.objects.create(organization_id=other, mrn="ας-1", name="Their Patient").pk
    finally:
        new = _migrate(KEYED)
    from apps.cases.models import mrn_key

    found = {pk: (mrn, key) for pk, mrn, key in new.get_model("cases", "Patient").objects.values_list(
        "pk", "mrn", "mrn_key")}
    expected = {theirs: "ας-1"}
    for first_pk, later_pk, first, later in rows:
        expected |= {first_pk: first, later_pk: f"{later} (duplicate {later_pk})"}
    assert found == {pk: (mrn, mrn_key(mrn)) for pk, mrn in expected.items()}


def test_a_renamed_mrn_typed_so_already_gets_another_suffix():
    """A reviewer: 0005 renamed a later row "<mrn> (duplicate N)" without asking whether an
    earlier row had that MRN already (typed so), and the migration then failed on the new
    constraint. The later row is renamed "(duplicate N-2)" instead, cut to fit as the first
    suffix is (an MRN of 64 characters); the row typed so keeps its MRN, and ``mrn_duplicates``
    finds the renamed row with the patient that kept its MRN."""
    from apps.cases.models import Patient as Current

    old = _migrate(AFTER)
    org = OrganizationFactory().pk
    Patient = old.get_model("cases", "Patient")
    max_length = Current._meta.get_field("mrn").max_length
    pairs = [("ΑΣ-1", "ας-1"), ("X" * (max_length - 7) + "STRASSE", "x" * (max_length - 7) + "straße")]
    rows = []
    for first, later in pairs:
        kept = Patient.objects.create(organization_id=org, mrn=first, name="First Entered").pk
        typed = Patient.objects.create(organization_id=org, mrn=f"placeholder {kept}", name="Typed So").pk
        renamed = Patient.objects.create(organization_id=org, mrn=later, name="Later Entered").pk
        suffix = f" (duplicate {renamed})"
        # the MRN 0005 would give the later row, entered before it (LOWER() keeps the two apart)
        Patient.objects.filter(pk=typed).update(mrn=later[:max_length - len(suffix)] + suffix)
        rows.append((kept, typed, renamed, first, later))
    typed_mrns = dict(Patient.objects.values_list("pk", "mrn"))
    new = _migrate(KEYED)
    mrns = dict(new.get_model("cases", "Patient").objects.values_list("pk", "mrn"))
    expected = {}
    for kept, typed, renamed, first, later in rows:
        suffix = f" (duplicate {renamed}-2)"
        expected |= {kept: first, typed: typed_mrns[typed], renamed: later[:max_length - len(suffix)] + suffix}
    assert mrns == expected
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    from apps.cases import selectors

    found = {d.patient.pk: d.kept_by.pk for d in selectors.mrn_duplicates(organization_id=org)}
    assert found == {renamed: kept for kept, _typed, renamed, _first, _later in rows}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's LOWER() folds no letter the key keeps apart")
def test_back_to_0004_renames_the_mrns_its_constraint_counts_as_one():
    """A reviewer: 0005 lets in MRNs that the database's LOWER() folds together ("İD-1" and
    "id-1" on PostgreSQL), and migrating back to 0004, whose ``one_mrn_per_org`` is on LOWER(mrn),
    failed building it again. The reverse renames the later row as 0004 did ("(duplicate N-2)"
    where "(duplicate N)" is an MRN already, here typed so), keeping its case; the rest stay."""
    from apps.cases.models import Case, Patient

    org = OrganizationFactory()
    first = Patient.objects.create(organization=org, mrn="İD-1", name="First Entered")
    later = Patient.objects.create(organization=org, mrn="id-1", name="Later Entered")
    typed = Patient.objects.create(organization=org, mrn=f"İD-1 (duplicate {later.pk})", name="Typed So")
    other = Patient.objects.create(organization=OrganizationFactory(), mrn="id-1", name="Their Patient")
    case = Case.objects.create(organization=org, patient=later, title="Kept")
    old = _migrate(AFTER)
    mrns = dict(old.get_model("cases", "Patient").objects.values_list("pk", "mrn"))
    assert mrns == {first.pk: "İD-1", later.pk: f"id-1 (duplicate {later.pk}-2)", typed.pk: typed.mrn,
                    other.pk: "id-1"}
    assert old.get_model("cases", "Case").objects.get(pk=case.pk).patient_id == later.pk
