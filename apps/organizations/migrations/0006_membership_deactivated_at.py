from django.db import migrations, models


def deactivated_at_from_the_trail(apps, schema_editor):
    """An inactive membership's deactivated_at: when its organization's trail recorded it
    deactivated last (``membership.updated``, its ``after.is_active`` false). One with no such
    event (ended outside the service) keeps None, which the audit routing takes as recent."""
    Membership = apps.get_model("organizations", "Membership")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    ended = {str(m.public_id): m for m in Membership.objects.filter(is_active=False, deactivated_at__isnull=True)}
    if not ended:
        return
    found = {}
    for target_id, details, created_at in (AuditEvent.objects.filter(action="membership.updated",
                                                                     target_id__in=list(ended))
                                           .order_by("id").values_list("target_id", "details", "created_at")):
        after = (details or {}).get("after") or {}
        if after.get("is_active") is False:
            found[target_id] = created_at
    for target_id, created_at in found.items():
        Membership.objects.filter(pk=ended[target_id].pk).update(deactivated_at=created_at)


class Migration(migrations.Migration):

    dependencies = [
        ("organizations", "0005_membership_last_switched_at"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="deactivated_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="deactivated at"),
        ),
        migrations.RunPython(deactivated_at_from_the_trail, migrations.RunPython.noop),
    ]
