from django.db import migrations


def forget_claims_checked_less(apps, schema_editor):
    """Rows made before the check asked the de-identification profile's exclusions too (burned-in
    text said or likely, a secondary or screen-saved image), its rule for free text and the
    Retain UIDs Option: they no longer say the identity was removed, until their rendition is
    made again (a package under-claims rather than calls a file de-identified whose pixels or
    comments may still name its patient)."""
    apps.get_model("renditions", "RenditionFile").objects.filter(identity_removed=True).update(identity_removed=False)


class Migration(migrations.Migration):

    dependencies = [
        ("renditions", "0005_renditionfile_education_image"),
    ]

    operations = [
        migrations.RunPython(forget_claims_checked_less, migrations.RunPython.noop),
    ]
