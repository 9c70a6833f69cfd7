"""Authenticators that were never confirmed are removed: the enrolment page used to store one (its
secret key) on every first view, and kept it for a later enrolment. The key of an enrolment under
way now waits in the session (apps.accounts.mfa.totp_pending); nothing reads unconfirmed devices.
Someone mid-enrolment at the upgrade sees a new QR code."""

from __future__ import annotations

from django.db import migrations


def unconfirmed_removed(apps, schema_editor):
    apps.get_model("otp_totp", "TOTPDevice").objects.filter(confirmed=False).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_user_and_invitation_language"),
        ("otp_totp", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(unconfirmed_removed, migrations.RunPython.noop)]
