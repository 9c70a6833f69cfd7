"""cases 0004: existing MRNs lose the blanks around them and become unique whatever the case of
their letters. Two patients entered as one MRN before ("DEMO-0001" and "demo-0001 ") are both
kept, with their cases: the first entered keeps the MRN, the later one says it is a duplicate.

The scenarios share one trip through the migrations (``migrated``; a trip for each test took
50 s for the module): from the latest state back to 0004 (0005 reversed), back to 0003, then
forward to 0004, 0005 and the latest again. Each scenario's rows are made in organizations of
their own at the state before the migration it is about (the earlier scenarios' rows stay) and
read right after it; each test checks its own scenario."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection

from tests.factories import OrganizationFactory
from tests.migrating import Migrator, module_trip

pytestmark = pytest.mark.django_db

BEFORE, AFTER = [("cases", "0003_attachments")], [("cases", "0004_mrn_case_insensitive")]
KEYED = [("cases", "0005_patient_mrn_key")]
#: MRN pairs Python's lower() and the database's LOWER() fold otherwise
FOLDED = [("İD-1", "id-1"), ("ΑΣ-1", "ασ-1")]
ON_POSTGRESQL = connection.vendor == "postgresql"


class Read:
    """The patients and cases as read right after a migration, by its historical models."""

    def __init__(self, apps) -> None:
        self.patients = {p.pk: p for p in apps.get_model("cases", "Patient").objects.all()}
        self.case_patients = dict(apps.get_model("cases", "Case").objects.values_list("pk", "patient_id"))

    def mrns(self, *orgs: int) -> dict[int, str]:
        """Each patient's MRN by id, of every patient of ``orgs`` (the scenario's organizations)."""
        return {pk: p.mrn for pk, p in self.patients.items() if p.organization_id in orgs}


@pytest.fixture(scope="module")
def migrated(django_db_setup, django_db_blocker):
    """Every scenario's rows made before its migration and read after it, in one trip; the tables
    then left with every migration applied (also when a step fails) and emptied, as the later tests
    expect them."""
    yield from module_trip(django_db_blocker, _trip)


def _trip(migrator: Migrator) -> SimpleNamespace:
    seen = SimpleNamespace()
    if ON_POSTGRESQL:
        seen.back = _made_for_the_way_back()
    seen.at_0004_back = Read(migrator.migrate(AFTER))
    old = migrator.migrate(BEFORE)
    seen.colliding = _made_colliding(old)
    seen.folded = {pair: _made_folded(old, *pair) for pair in FOLDED}
    new = migrator.migrate(AFTER)
    seen.at_0004 = Read(new)
    seen.keyed = _made_one_by_the_key(new)
    seen.typed = _made_typed_so(new)
    seen.at_0005 = Read(migrator.migrate(KEYED))
    migrator.latest()
    from apps.cases import selectors

    seen.duplicates = {d.patient.pk: d.kept_by.pk for d in selectors.mrn_duplicates(
        organization_id=seen.typed.org)}
    return seen


def _made_colliding(old) -> SimpleNamespace:
    """At 0003. organizations' tables are as now (only cases went back): their rows by the current model."""
    org, other = OrganizationFactory().pk, OrganizationFactory().pk
    Patient, Case = old.get_model("cases", "Patient"), old.get_model("cases", "Case")
    first = Patient.objects.create(organization_id=org, mrn="DEMO-0001", name="Alex Demo")
    second = Patient.objects.create(organization_id=org, mrn="demo-0001 ", name="Maria Different")
    spaced = Patient.objects.create(organization_id=org, mrn=" QF-9 ", name="Quill Feather")
    theirs = Patient.objects.create(organization_id=other, mrn="demo-0001", name="Their Patient")
    case = Case.objects.create(organization_id=org, patient=second, title="Kept")
    return SimpleNamespace(orgs=(org, other), first=first.pk, second=second.pk, spaced=spaced.pk,
                           theirs=theirs.pk, case=case.pk)


def test_colliding_mrns_are_both_kept_and_the_rest_normalised(migrated):
    made, after = migrated.colliding, migrated.at_0004
    assert after.mrns(*made.orgs) == {made.first: "DEMO-0001", made.second: f"demo-0001 (duplicate {made.second})",
                                      made.spaced: "QF-9", made.theirs: "demo-0001"}
    assert after.case_patients[made.case] == made.second
    assert after.patients[made.second].name == "Maria Different"


def _made_folded(old, mrn: str, other: str) -> SimpleNamespace:
    """At 0003: ``mrn`` entered, then ``other``, in an organization of their own."""
    org = OrganizationFactory().pk
    Patient = old.get_model("cases", "Patient")
    first = Patient.objects.create(organization_id=org, mrn=mrn, name="First Entered")
    second = Patient.objects.create(organization_id=org, mrn=other, name="Second Entered")
    return SimpleNamespace(org=org, first=first.pk, second=second.pk)


@pytest.mark.parametrize(("mrn", "other"), FOLDED)
def test_mrns_are_counted_as_the_database_folds_them(migrated, mrn, other):
    """A reviewer: the migration folded MRNs with Python's lower(), which does not always agree
    with the database's LOWER() that one_mrn_per_org uses ("İD-1" and "ΑΣ-1" fold otherwise), so a
    pair the constraint counts as one was kept and building the constraint failed the deploy. The
    rows are counted as the database counts them (PostgreSQL folds these pairs alike; SQLite's
    LOWER() only ASCII letters, so there they stay two MRNs)."""
    made = migrated.folded[(mrn, other)]
    mrns = migrated.at_0004.mrns(made.org)
    if connection.vendor == "postgresql":
        assert mrns == {made.first: mrn, made.second: f"{other} (duplicate {made.second})"}
    else:
        assert mrns == {made.first: mrn, made.second: other}


def _made_one_by_the_key(old) -> SimpleNamespace:
    """At 0004: pairs LOWER() keeps apart and the key makes one MRN, and one of them elsewhere."""
    pairs = [("ΑΣ-1", "ας-1"), ("STRASSE-1", "straße-1")]
    if connection.vendor != "postgresql":
        pairs.append(("É-1", "é-1"))
    org, other = OrganizationFactory().pk, OrganizationFactory().pk
    Patient = old.get_model("cases", "Patient")
    rows = [(Patient.objects.create(organization_id=org, mrn=first, name="First Entered").pk,
             Patient.objects.create(organization_id=org, mrn=later, name="Later Entered").pk, first, later)
            for first, later in pairs]
    theirs = Patient.objects.create(organization_id=other, mrn="ας-1", name="Their Patient").pk
    return SimpleNamespace(orgs=(org, other), rows=rows, theirs=theirs)


def test_mrns_one_by_the_python_key_are_both_kept(migrated):
    """cases 0005: ``one_mrn_per_org`` on ``mrn_key`` (Python's fold) instead of LOWER(). Rows
    that LOWER() kept apart and the key makes one MRN ("ΑΣ-1" and "ας-1", "STRASSE-1" and
    "straße-1"; on SQLite "É-1" and "é-1") are both kept, as 0004 kept them: the later one says
    it is a duplicate; every row gets its key."""
    from apps.cases.models import mrn_key

    made, after = migrated.keyed, migrated.at_0005
    found = {pk: (p.mrn, p.mrn_key) for pk, p in after.patients.items() if p.organization_id in made.orgs}
    expected = {made.theirs: "ας-1"}
    for first_pk, later_pk, first, later in made.rows:
        expected |= {first_pk: first, later_pk: f"{later} (duplicate {later_pk})"}
    assert found == {pk: (mrn, mrn_key(mrn)) for pk, mrn in expected.items()}


def _made_typed_so(old) -> SimpleNamespace:
    """At 0004: pairs the key makes one MRN, and between them a row typed with the MRN 0005 would
    give the later one."""
    from apps.cases.models import Patient as Current

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
    typed_mrns = dict(Patient.objects.filter(organization_id=org).values_list("pk", "mrn"))
    return SimpleNamespace(org=org, rows=rows, typed_mrns=typed_mrns, max_length=max_length)


def test_a_renamed_mrn_typed_so_already_gets_another_suffix(migrated):
    """A reviewer: 0005 renamed a later row "<mrn> (duplicate N)" without asking whether an
    earlier row had that MRN already (typed so), and the migration then failed on the new
    constraint. The later row is renamed "(duplicate N-2)" instead, cut to fit as the first
    suffix is (an MRN of 64 characters); the row typed so keeps its MRN, and ``mrn_duplicates``
    finds the renamed row with the patient that kept its MRN."""
    made = migrated.typed
    expected = {}
    for kept, typed, renamed, first, later in made.rows:
        suffix = f" (duplicate {renamed}-2)"
        expected |= {kept: first, typed: made.typed_mrns[typed],
                     renamed: later[:made.max_length - len(suffix)] + suffix}
    assert migrated.at_0005.mrns(made.org) == expected
    # the selector, on every migration applied
    assert migrated.duplicates == {renamed: kept for kept, _typed, renamed, _first, _later in made.rows}


def _made_for_the_way_back() -> SimpleNamespace:
    """At the latest state, by the current models: MRNs 0005 lets in that LOWER() folds together."""
    from apps.cases.models import Case, Patient

    org = OrganizationFactory()
    first = Patient.objects.create(organization=org, mrn="İD-1", name="First Entered")
    later = Patient.objects.create(organization=org, mrn="id-1", name="Later Entered")
    typed = Patient.objects.create(organization=org, mrn=f"İD-1 (duplicate {later.pk})", name="Typed So")
    other = Patient.objects.create(organization=OrganizationFactory(), mrn="id-1", name="Their Patient")
    case = Case.objects.create(organization=org, patient=later, title="Kept")
    return SimpleNamespace(orgs=(org.pk, other.organization_id), first=first.pk, later=later.pk,
                           typed=typed.pk, typed_mrn=typed.mrn, other=other.pk, case=case.pk)


@pytest.mark.skipif(not ON_POSTGRESQL, reason="SQLite's LOWER() folds no letter the key keeps apart")
def test_back_to_0004_renames_the_mrns_its_constraint_counts_as_one(migrated):
    """A reviewer: 0005 lets in MRNs that the database's LOWER() folds together ("İD-1" and
    "id-1" on PostgreSQL), and migrating back to 0004, whose ``one_mrn_per_org`` is on LOWER(mrn),
    failed building it again. The reverse renames the later row as 0004 did ("(duplicate N-2)"
    where "(duplicate N)" is an MRN already, here typed so), keeping its case; the rest stay."""
    made, back = migrated.back, migrated.at_0004_back
    assert back.mrns(*made.orgs) == {made.first: "İD-1", made.later: f"id-1 (duplicate {made.later}-2)",
                                     made.typed: made.typed_mrn, made.other: "id-1"}
    assert back.case_patients[made.case] == made.later
