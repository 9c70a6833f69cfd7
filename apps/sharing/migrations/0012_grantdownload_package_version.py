"""The package a transfer counted (its ETag and size): a Range request continues the transfer only
for that same package; a package that changed since is a new download, counted. Transfers counted
before have no version and are not resumed (the next Range request for them is a new download)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("sharing", "0011_share_confirmation"),
    ]

    operations = [
        migrations.AddField(
            model_name="grantdownload",
            name="package_etag",
            field=models.CharField(blank=True, default="", editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="grantdownload",
            name="package_bytes",
            field=models.BigIntegerField(default=0, editable=False),
        ),
    ]
