"""One request for the original DICOM waits a person and case (5d75554): requests made before can
hold two (or more) of one requester for one case still marked pending. Each such set keeps its
newest; the older ones are closed as the code closes a request a new one replaces
(``services._original_requests_supersede``): withdrawn, no decider, recorded as
``original_request.withdrawn`` with reason ``superseded``, the share it was asked under and the
request that replaced it. Recorded by the system (no actor: nobody did it), through the audit
service, so that each event is chained as every other (its rows are written only where there are
such pairs, on a database whose audit tables are as ``audit`` 0009 left them). Backwards: nothing
(the closed requests stay closed). Migration 0016 then has the database refuse a second one."""

from django.db import migrations
from django.db.models import Count
from django.utils import timezone


def _close_older_pending(apps, schema_editor):
    from apps.audit import actions as audit_actions
    from apps.audit.services import record

    OriginalRequest = apps.get_model("sharing", "OriginalRequest")
    pending = OriginalRequest.objects.filter(status="pending")
    pairs = (pending.values("case_id", "requested_by_id").annotate(n=Count("id")).filter(n__gt=1)
             .values_list("case_id", "requested_by_id").order_by("case_id", "requested_by_id"))
    now = timezone.now()
    for case_id, requested_by_id in list(pairs):
        newest, *older = (pending.filter(case_id=case_id, requested_by_id=requested_by_id)
                          .select_related("case", "grant").order_by("-created_at", "-id"))
        for req in sorted(older, key=lambda r: r.pk):
            req.status, req.decided_by, req.decided_at = "withdrawn", None, now
            req.save(update_fields=["status", "decided_by", "decided_at"])
            record(action=audit_actions.ORIGINAL_REQUEST_WITHDRAWN, actor=None,
                   organization_id=req.organization_id, target=req, case=req.case,
                   details={"reason": "superseded", "grant": str(req.grant.public_id),
                            "superseded_by": str(newest.public_id)})


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0009_organization_started_guard"),
        ("sharing", "0014_grant_case_title_at_end"),
    ]

    operations = [
        migrations.RunPython(_close_older_pending, migrations.RunPython.noop),
    ]
