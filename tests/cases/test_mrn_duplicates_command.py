"""Patients whose MRN cases 0004 or 0005 renamed "<mrn> (duplicate <id>)" (found by review: the
rename was not recorded, and the staff had no way to find them but reading every case page):
``manage.py mrn_duplicates`` lists them with the patient that kept the MRN and both patients'
cases, by public id only (no MRN, name or birth date in its output)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from tests.factories import CaseFactory, OrganizationFactory, PatientFactory

pytestmark = pytest.mark.django_db


def _renamed(org, mrn, **kwargs):
    """A patient renamed as the migrations do: cut to leave room for the suffix (64 in all)."""
    patient = PatientFactory(organization=org, mrn="placeholder", **kwargs)
    suffix = f" (duplicate {patient.pk})"
    patient.mrn = mrn[:64 - len(suffix)] + suffix
    patient.save(update_fields=["mrn"])
    return patient


def _run(*args) -> str:
    out = io.StringIO()
    call_command("mrn_duplicates", *args, stdout=out)
    return out.getvalue()


def test_the_renamed_patients_are_listed_with_the_one_that_kept_the_mrn(org_a):
    kept = PatientFactory(organization=org_a, mrn="ΑΣ-1", name="Quentin Zebulon")
    renamed = _renamed(org_a, "ας-1", name="Maria Different")
    kept_case, renamed_case = CaseFactory(organization=org_a, patient=kept), CaseFactory(organization=org_a,
                                                                                         patient=renamed)
    typed = PatientFactory(organization=org_a, mrn="QF-9 (duplicate 999999)")  # typed so: another row's number
    long_kept = PatientFactory(organization=org_a, mrn="L" * 64)
    cut = _renamed(org_a, "l" * 64)
    other_org = OrganizationFactory()
    theirs = _renamed(other_org, "XY-2")
    output = _run()
    assert f"patient {renamed.public_id} (cases: {renamed_case.get_absolute_url()})" in output
    assert f"one MRN with patient {kept.public_id} (cases: {kept_case.get_absolute_url()})" in output
    assert str(typed.public_id) not in output
    assert f"patient {cut.public_id} (cases: no case)\n  one MRN with patient {long_kept.public_id} " in output
    assert f"patient {theirs.public_id} (cases: no case)\n  the patient that kept its MRN is no longer" in output
    assert "3 patient(s) renamed as duplicates" in output
    # no patient data in what may reach a log
    for phi in ("ΑΣ-1", "ας-1", "Quentin Zebulon", "Maria Different", "XY-2"):
        assert phi not in output
    only_theirs = _run("--org", other_org.slug)
    assert str(theirs.public_id) in only_theirs and str(renamed.public_id) not in only_theirs
    with pytest.raises(CommandError):
        _run("--org", "nope")


def test_record_writes_each_rename_once_into_its_organization_trail(org_a):
    kept = PatientFactory(organization=org_a, mrn="AB-1")
    renamed = _renamed(org_a, "ab-1")
    theirs = _renamed(OrganizationFactory(), "CD-2")
    _run()  # listing alone records nothing
    assert not AuditEvent.objects.filter(action="patient.mrn_renamed").exists()
    assert "2 rename(s) recorded in the audit trail (0 recorded before)" in _run("--record")
    events = {e.target_id: e for e in AuditEvent.objects.filter(action="patient.mrn_renamed")}
    assert set(events) == {str(renamed.public_id), str(theirs.public_id)}
    assert events[str(renamed.public_id)].organization_id == org_a.pk
    assert events[str(renamed.public_id)].details == {"kept_by": str(kept.public_id), "by": "migration"}
    assert events[str(theirs.public_id)].details["kept_by"] is None
    assert events[str(renamed.public_id)].actor_type == "system"
    assert "0 rename(s) recorded in the audit trail (2 recorded before)" in _run("--record")
    assert AuditEvent.objects.filter(action="patient.mrn_renamed").count() == 2
