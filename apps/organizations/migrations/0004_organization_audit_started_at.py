"""``Organization.audit_started_at``: when the organization's audit chain got its first event.

``verify_audit`` reports an organization whose trail began (this is set) and whose chain has no
event or no head any more: the audit tables emptied (TRUNCATE, or the rows deleted with the
triggers switched off) otherwise verified as "0 events in 0 chains". Organizations with events
already get the time of their first one here; those with none are set by their first event
(``apps.audit.chain.append``)."""

from django.db import migrations, models
from django.db.models import Min


def backfill(apps, schema_editor):
    Organization = apps.get_model("organizations", "Organization")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    firsts = (AuditEvent.objects.filter(organization__isnull=False).order_by().values("organization_id")
              .annotate(first=Min("created_at")).values_list("organization_id", "first"))
    for organization_id, first in firsts:
        Organization.objects.filter(pk=organization_id, audit_started_at__isnull=True).update(audit_started_at=first)


class Migration(migrations.Migration):

    dependencies = [
        ("organizations", "0003_password_login_help"),
        ("audit", "0007_chain_head_trigger"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="audit_started_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="audit trail started"),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
