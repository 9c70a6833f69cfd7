"""Grants made by starting a tumor board were stored as custom shares (the default use case), so
their recipients saw "Custom" where they were given a tumor board review. The board's grants are
now made as tumor board reviews (apps.cases.services.board_start); this names the earlier ones so.
A board's grants are never extended nor renewed (services.grant_extend_refusal and
grant_renew_refusal refuse them), so the template's other terms change nothing for them."""

from django.db import migrations


def forwards(apps, schema_editor):
    Grant = apps.get_model("sharing", "Grant")
    Grant.objects.filter(source="board", use_case="custom").update(use_case="tumor_board")


class Migration(migrations.Migration):

    dependencies = [
        ("sharing", "0008_grantdownload_bytes_sent"),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
