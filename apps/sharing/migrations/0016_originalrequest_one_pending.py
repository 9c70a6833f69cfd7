"""The database refuses a second request for the original DICOM waiting for one person and case
(the code's rule since 5d75554: a new request closes the one it replaces before it is written,
``services._original_requests_supersede``). A partial unique index (PostgreSQL and SQLite alike);
the pairs made before the rule were closed by 0015."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("cases", "0005_patient_mrn_key"),
        ("organizations", "0005_membership_last_switched_at"),
        ("sharing", "0015_original_requests_one_pending"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="originalrequest",
            constraint=models.UniqueConstraint(condition=models.Q(("status", "pending")),
                                               fields=("case", "requested_by"), name="one_pending_original_request"),
        ),
    ]
