"""``Membership.last_switched_at``: when the person last switched to the organization (the
header's switcher). Their next sign-in starts in the organization they last switched to while that
membership is active (``apps.organizations.services.organization_at_sign_in``); none is set for
memberships of before, whose sign-in starts as it did (the first organization)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("organizations", "0004_organization_audit_started_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="last_switched_at",
            field=models.DateTimeField(blank=True, editable=False, null=True,
                                       verbose_name="last switched to this organization"),
        ),
    ]
