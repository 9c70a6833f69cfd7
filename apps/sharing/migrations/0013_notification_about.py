"""What a notice is about (its case or tumor board), which the in-app notice names by its title
when shown; the title itself is not stored in the notice. Notices made before name nothing."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("cases", "0005_patient_mrn_key"),
        ("sharing", "0012_grantdownload_package_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="board",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="+", to="cases.boardsession"),
        ),
        migrations.AddField(
            model_name="notification",
            name="case",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="+", to="cases.case"),
        ),
    ]
