"""Whether an organization lets its anonymous links carry the identified original DICOM (off for
every organization, as before none could restrict it: a live anonymous link giving the original
is stopped at its next download, ``policy.anonymous_original_refusal_of``)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sharing', '0016_originalrequest_one_pending'),
    ]

    operations = [
        migrations.AddField(
            model_name='sharingpolicy',
            name='anonymous_allow_original',
            field=models.BooleanField(default=False, help_text="Off: anonymous links give previews only. On: an anonymous link may also give the identified original DICOM, but only when it asks for a passcode or the patient's birth date.", verbose_name='allow the original DICOM on anonymous links'),
        ),
    ]
