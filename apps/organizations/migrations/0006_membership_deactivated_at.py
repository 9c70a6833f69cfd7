from django.db import migrations, models


def deactivated_at_from_the_trail(apps, schema_editor):
    """An inactive membership's deactivated_at: when its organization's trail recorded it
    deactivated last (``membership.updated``, its ``after.is_active`` false). One with no such
    event (ended outside the service, or before the trail began) keeps None: it ended at a time
    not known, which the audit routing (``apps.audit.services._member_org_ids``) does not take as
    recent: the person's account events are not routed to that organization."""
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
