"""The case's title when a share ended, kept once the case is renamed after that: "Shared with
me" names an ended share's case by it, not by the case's title as it is now (a new title may name
the patient). Kept from now on by ``services.grants_case_title_keep``; for shares that had ended
already, the title they had then is not known: where their case was renamed since they ended
(the audit trail's ``case.edited`` of the case, which names the fields changed, with "title"
among them, recorded after the share's end: revoked, or run out) it is marked not known (""),
named by a neutral label; the others keep None (their case's title is still that one). Closing,
reopening or another edit of the case changes its ``updated_at`` but not its title: those are
not marked. The trail is only read here (its historical model), never written."""

from django.db import migrations, models
from django.db.models import F, Q
from django.utils import timezone


def _ended_at(grant, now):
    """When ``grant`` ended (revoked, or run out), or None while it has not."""
    ends = [t for t in (grant.revoked_at, grant.expires_at if grant.expires_at <= now else None) if t is not None]
    return min(ends) if ends else None


def _mark_unknown(apps, schema_editor):
    Grant = apps.get_model("sharing", "Grant")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    now = timezone.now()
    # those whose case changed in any way since they ended (``Case.updated_at``): the shares a
    # rename may concern, a few of all; a rename is then looked for in the trail
    changed_since_end = (Q(revoked_at__isnull=False, case__updated_at__gt=F("revoked_at"))
                         | Q(expires_at__lte=now, case__updated_at__gt=F("expires_at")))
    candidates = list(Grant.objects.filter(changed_since_end).select_related("case"))
    if not candidates:
        return
    # the times each case was renamed: its ``case.edited`` events naming "title" (the details
    # are JSON, read in Python: the same on SQLite and PostgreSQL)
    renamed: dict[str, list] = {}
    cases = sorted({str(g.case.public_id) for g in candidates})
    for start in range(0, len(cases), 500):  # SQLite's limit on a query's parameters
        edits = AuditEvent.objects.filter(action="case.edited", target_type="case",
                                          target_id__in=cases[start:start + 500])
        for target_id, created_at, details in edits.values_list("target_id", "created_at", "details"):
            fields = details.get("fields") if isinstance(details, dict) else None
            if isinstance(fields, list) and "title" in fields:
                renamed.setdefault(target_id, []).append(created_at)
    ids = [g.pk for g in candidates
           if any(at > _ended_at(g, now) for at in renamed.get(str(g.case.public_id), ()))]
    for start in range(0, len(ids), 500):
        Grant.objects.filter(pk__in=ids[start:start + 500]).update(case_title_at_end="")


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_auditevent_case_ref_auditevent_study_ref"),
        ("cases", "0005_patient_mrn_key"),
        ("sharing", "0013_notification_about"),
    ]

    operations = [
        migrations.AddField(
            model_name="grant",
            name="case_title_at_end",
            field=models.CharField(blank=True, editable=False, max_length=200, null=True),
        ),
        migrations.RunPython(_mark_unknown, migrations.RunPython.noop),
    ]
