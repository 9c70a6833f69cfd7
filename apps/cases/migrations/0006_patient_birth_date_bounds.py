"""A patient's birth date is validated by ``birth_date_in_range``: not in the future (as before,
``birth_date_not_in_future``) nor more than 130 years ago. Validators only: nothing changes in
the database, and rows recorded outside the bounds stay as they are, to be corrected."""

from __future__ import annotations

from django.db import migrations, models

import apps.cases.models


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0005_patient_mrn_key"),
    ]

    operations = [
        migrations.AlterField(
            model_name="patient",
            name="birth_date",
            field=models.DateField(blank=True, null=True, validators=[apps.cases.models.birth_date_in_range],
                                   verbose_name="birth date"),
        ),
    ]
