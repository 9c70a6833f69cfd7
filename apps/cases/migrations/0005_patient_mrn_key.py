"""MRNs are matched and counted by one rule, computed in Python (``models.mrn_key``) and stored
as ``Patient.mrn_key``; ``one_mrn_per_org`` is unique on it instead of on the database's LOWER(),
which folds some letters otherwise than Python (PostgreSQL "İ" and "ς", SQLite only ASCII
letters): the attach check, made in Python, disagreed with the lookups made in the database.

Patients whose MRNs were two MRNs for the database's LOWER() but are one by the new rule ("ΑΣ-1"
and "ας-1"; "STRASSE" and "straße"; on SQLite "É-1" and "é-1") are all kept, as cases 0004 kept
them: the first entered (lowest id) keeps the MRN, each later one gets " (duplicate N)" after it
(N its row's id) for the organization's staff to reconcile, or " (duplicate N-2)", "-3"... when
that is an MRN of the organization already (someone typed it so).

Reversed (back to 0004's LOWER()), the renamed MRNs stay, and rows this rule kept apart that the
database's LOWER() folds together (PostgreSQL's "İD-1" and "id-1", both let in after this
migration) are renamed the same way first, so that 0004's constraint can be built again.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable

from django.db import migrations, models

import apps.cases.models

MRN_MAX = 64


def _key(mrn: str) -> str:
    """``models.mrn_key`` as of this migration (a later change of the rule brings its own)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", (mrn or "").strip()).casefold())


def _renamed(rows: list[tuple[int, int, str]], key: Callable[[str], str]) -> dict[int, str]:
    """Of ``rows`` (id, organization id, MRN; by organization and id), those whose MRN an earlier
    row of their organization has (by ``key``), each with its new MRN: "<mrn> (duplicate <id>)",
    the MRN cut to fit ``MRN_MAX``; "(duplicate <id>-2)", "-3"... while that is an MRN of the
    organization already, by ``key``: an earlier row's (the two would collide) or a later one's
    (which would then be renamed for it)."""
    taken = {(org_id, key(mrn)) for _, org_id, mrn in rows}
    seen: set[tuple[int, str]] = set()
    renamed: dict[int, str] = {}
    for pk, org_id, mrn in rows:
        if (org_id, key(mrn)) in seen:
            for attempt in itertools.count(1):
                suffix = f" (duplicate {pk})" if attempt == 1 else f" (duplicate {pk}-{attempt})"
                new = mrn[:MRN_MAX - len(suffix)] + suffix
                if (org_id, key(new)) not in taken:
                    break
            renamed[pk] = mrn = new
            taken.add((org_id, key(mrn)))
        seen.add((org_id, key(mrn)))
    return renamed


def _rows(Patient) -> list[tuple[int, int, str]]:
    return list(Patient.objects.order_by("organization_id", "id").values_list("id", "organization_id", "mrn"))


def _fill(apps, schema_editor):
    """Every row's key, and a later row whose key is an earlier one's renamed. Each row is written
    once (see cases 0004: PostgreSQL refuses to build the index while a row updated twice in the
    transaction holds deferred foreign-key checks pending)."""
    Patient = apps.get_model("cases", "Patient")
    rows = _rows(Patient)
    renamed = _renamed(rows, _key)
    for pk, _org_id, mrn in rows:
        mrn = renamed.get(pk, mrn)
        Patient.objects.filter(pk=pk).update(mrn=mrn, mrn_key=_key(mrn))


def _unfill(apps, schema_editor):
    """Back to 0004, whose ``one_mrn_per_org`` is unique on the database's LOWER(mrn): a later row
    whose MRN LOWER() folds as an earlier one's is renamed, as 0004 renamed them (each written
    once). The key column goes with this migration's other operations."""
    Patient = apps.get_model("cases", "Patient")
    folded: dict[str, str] = {}
    with schema_editor.connection.cursor() as cursor:
        def lower(mrn: str) -> str:
            if mrn not in folded:
                cursor.execute("SELECT LOWER(%s)", [mrn])
                folded[mrn] = cursor.fetchone()[0]
            return folded[mrn]

        renamed = _renamed(_rows(Patient), lower)
    for pk, mrn in renamed.items():
        Patient.objects.filter(pk=pk).update(mrn=mrn)


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
        migrations.RunPython(_fill, _unfill),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.UniqueConstraint(fields=("organization", "mrn_key"), name="one_mrn_per_org"),
        ),
    ]
