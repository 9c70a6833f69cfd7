"""The case's title when a share ended, kept once the case is renamed after that: "Shared with
me" names an ended share's case by it, not by the case's title as it is now (a new title may name
the patient). Kept from now on by ``services.grants_case_title_keep``; for shares that had ended
already, the title they had then is not known: where their case has changed since they ended
(``Case.updated_at`` later than their end, an edit that may have been a rename) it is marked not
known (""), named by a neutral label; the others keep None (their case's title is still that one)."""

from django.db import migrations, models
from django.db.models import F, Q
from django.utils import timezone


def _mark_unknown(apps, schema_editor):
    Grant = apps.get_model("sharing", "Grant")
    changed_since_end = (Q(revoked_at__isnull=False, case__updated_at__gt=F("revoked_at"))
                         | Q(expires_at__lte=timezone.now(), case__updated_at__gt=F("expires_at")))
    ids = list(Grant.objects.filter(changed_since_end).values_list("pk", flat=True))
    Grant.objects.filter(pk__in=ids).update(case_title_at_end="")


class Migration(migrations.Migration):

    dependencies = [
        ("cases", "0005_patient_mrn_key"),
        ("sharing", "0013_notification_about"),
    ]

    operations = [
        migrations.AddField(
            model_name="grant",
            name="case_title_at_end",
            field=models.CharField(blank=True, editable=False, max_length=200, null=True),
        ),
        migrations.RunPython(_mark_unknown, migrations.RunPython.noop),
    ]
