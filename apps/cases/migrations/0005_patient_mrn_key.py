"""MRNs are matched and counted by one rule, computed in Python (``models.mrn_key``) and stored
as ``Patient.mrn_key``; ``one_mrn_per_org`` is unique on it instead of on the database's LOWER(),
which folds some letters otherwise than Python (PostgreSQL "İ" and "ς", SQLite only ASCII
letters): the attach check, made in Python, disagreed with the lookups made in the database.

Patients whose MRNs were two MRNs for the database's LOWER() but are one by the new rule ("ΑΣ-1"
and "ας-1"; "STRASSE" and "straße"; on SQLite "É-1" and "é-1") are all kept, as cases 0004 kept
them: the first entered (lowest id) keeps the MRN, each later one gets " (duplicate N)" after it
(N its row's id) for the organization's staff to reconcile. Not reversed: the renamed MRNs stay.
"""

from __future__ import annotations

import unicodedata

from django.db import migrations, models

import apps.cases.models

MRN_MAX = 64


def _key(mrn: str) -> str:
    """``models.mrn_key`` as of this migration (a later change of the rule brings its own)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", (mrn or "").strip()).casefold())


def _fill(apps, schema_editor):
    """Every row's key, and a later row whose key is an earlier one's renamed. Each row is written
    once (see cases 0004: PostgreSQL refuses to build the index while a row updated twice in the
    transaction holds deferred foreign-key checks pending)."""
    Patient = apps.get_model("cases", "Patient")
    seen: set[tuple[int, str]] = set()
    rows = list(Patient.objects.order_by("organization_id", "id").values_list("id", "organization_id", "mrn"))
    for pk, org_id, mrn in rows:
        if (org_id, _key(mrn)) in seen:
            suffix = f" (duplicate {pk})"
            mrn = mrn[:MRN_MAX - len(suffix)] + suffix
        seen.add((org_id, _key(mrn)))
        Patient.objects.filter(pk=pk).update(mrn=mrn, mrn_key=_key(mrn))


class Migration(migrations.Migration):

    dependencies = [
        ("cases", "0004_mrn_case_insensitive"),
        ("organizations", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="mrn_key",
            field=apps.cases.models.MrnKeyField(default="", editable=False, max_length=192),
            preserve_default=False,
        ),
        migrations.RemoveConstraint(model_name="patient", name="one_mrn_per_org"),
        migrations.RunPython(_fill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.UniqueConstraint(fields=("organization", "mrn_key"), name="one_mrn_per_org"),
        ),
    ]
