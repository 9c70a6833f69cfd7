"""One MRN is one patient of an organization whatever the case of its letters and the blanks
around it: "demo-0001 " typed on the new-case form made a second patient beside DEMO-0001.

Existing MRNs lose the blanks around them, and ``one_mrn_per_org`` counts MRNs by their lower-case
form. Patients already entered twice that way (two rows whose MRNs are one MRN now) are both
kept, with their cases, names and birth dates: neither is merged into the other (whether they are
one person is for the organization's staff to decide, who may then move the cases). The first
entered (lowest id) keeps the MRN; each later one keeps it followed by " (duplicate N)" (N its
row's id, so the value is unique and says which row it was), which the organization's staff find
by the patient's name and correct. Not reversed: the MRNs stay as normalised.
"""

from __future__ import annotations

import django.db.models.functions.text
from django.db import migrations, models

import apps.cases.models

MRN_MAX = 64


def _normalise(apps, schema_editor):
    """Blanks dropped, and the rows whose MRNs ``one_mrn_per_org`` would count as one found by
    the database's own LOWER() (the constraint's): Python's lower() does not always agree with it
    ("İD-1" and "ΑΣ-1" fold otherwise), and a pair both kept would fail the constraint. Each row
    is written at most once (PostgreSQL refuses to build an index on a table with a row updated
    twice in the transaction: its deferred foreign-key checks are then pending)."""
    Patient = apps.get_model("cases", "Patient")
    seen: set[tuple[int, str]] = set()
    with schema_editor.connection.cursor() as cursor:
        for pk, org_id, mrn in Patient.objects.order_by("organization_id", "id").values_list(
                "id", "organization_id", "mrn"):
            clean = (mrn or "").strip()
            cursor.execute("SELECT LOWER(%s)", [clean])
            key = (org_id, cursor.fetchone()[0])
            if key in seen:
                suffix = f" (duplicate {pk})"
                clean = clean[:MRN_MAX - len(suffix)] + suffix
            else:
                seen.add(key)
            if clean != mrn:
                Patient.objects.filter(pk=pk).update(mrn=clean)


class Migration(migrations.Migration):

    dependencies = [
        ("cases", "0003_attachments"),
        ("organizations", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="patient", name="one_mrn_per_org"),
        migrations.RunPython(_normalise, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower("mrn"), models.F("organization"),
                                               name="one_mrn_per_org"),
        ),
        migrations.AlterField(
            model_name="patient",
            name="birth_date",
            field=models.DateField(blank=True, null=True, validators=[apps.cases.models.birth_date_not_in_future],
                                   verbose_name="birth date"),
        ),
    ]
