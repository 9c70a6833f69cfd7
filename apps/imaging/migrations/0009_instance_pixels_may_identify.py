"""Instance.pixels_may_identify (whether an image's pixels may identify its patient: text burned
in, said or likely, or a face), filled for the instances stored before it from their stored files:
the index keeps no header fields it is decided on, so each blob is read (decrypted, its header
only, ``stop_before_pixels``) once, whatever the number of versions pointing at it, and decided by
the de-identification's own screening (``apps.imaging.dicom.pixels_may_identify_of``). A file that
cannot be read (missing, its bytes altered, not DICOM) is marked as may identify."""

from django.db import migrations, models

BATCH = 500


def fill_pixels_may_identify(apps, schema_editor) -> None:
    from apps.imaging.blobs import open_blob
    from apps.imaging.dicom import pixels_may_identify_of

    Instance = apps.get_model("imaging", "Instance")
    Blob = apps.get_model("imaging", "Blob")
    decided: dict[int, bool] = {}
    blob_ids = Instance.objects.order_by().values_list("blob_id", flat=True).distinct()
    for blob in Blob.objects.filter(pk__in=blob_ids).iterator(chunk_size=BATCH):
        try:
            with open_blob(blob) as fh:
                decided[blob.pk] = pixels_may_identify_of(fh)
        except Exception:  # noqa: BLE001 - the file missing or unreadable: not taken as safe
            decided[blob.pk] = True
    flagged = [pk for pk, may in decided.items() if may]
    for start in range(0, len(flagged), BATCH):
        Instance.objects.filter(blob_id__in=flagged[start:start + BATCH]).update(pixels_may_identify=True)


class Migration(migrations.Migration):

    dependencies = [
        ('imaging', '0008_study_issuer_of_patient_id'),
    ]

    operations = [
        migrations.AddField(
            model_name='instance',
            name='pixels_may_identify',
            field=models.BooleanField(db_index=True, default=False),
        ),
        migrations.RunPython(fill_pixels_may_identify, migrations.RunPython.noop, elidable=True),
    ]
