from django.db import migrations, models

LABELS = [
    ("diagnostic_original", "Diagnostic original"),
    ("diagnostic_lossless", "Diagnostic - lossless compressed"),
    ("preview_lossy", "Preview - lossy"),
    ("education_low_res", "Patient education - low resolution"),
    ("lossy_source", "Original as received - lossy compressed, not diagnostic-grade"),
    ("lossless_of_lossy", "Lossless copy of a lossy original - same pixels as the original, not diagnostic-grade"),
]


def relabel_lossless_of_lossy(apps, schema_editor):
    """The lossless-compressed rendition (and its files) of a study whose original was received
    lossy-compressed said what the original is ("Original as received - lossy ..."): it says what
    it is now, a lossless copy of a lossy original (``models.label_for``)."""
    for name in ("Rendition", "RenditionFile"):
        apps.get_model("renditions", name).objects.filter(kind="lossless", label="lossy_source").update(
            label="lossless_of_lossy")


def label_as_before(apps, schema_editor):
    for name in ("Rendition", "RenditionFile"):
        apps.get_model("renditions", name).objects.filter(kind="lossless", label="lossless_of_lossy").update(
            label="lossy_source")


class Migration(migrations.Migration):

    dependencies = [
        ("renditions", "0006_identity_removed_reverified"),
    ]

    operations = [
        migrations.AlterField(
            model_name="rendition",
            name="label",
            field=models.CharField(choices=LABELS, max_length=32),
        ),
        migrations.AlterField(
            model_name="renditionfile",
            name="label",
            field=models.CharField(choices=LABELS, max_length=32),
        ),
        migrations.RunPython(relabel_lossless_of_lossy, label_as_before),
    ]
