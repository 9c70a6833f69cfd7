"""One request for the original DICOM waits a person and case (5d75554): requests made before can
hold two (or more) of one requester for one case still marked pending. Each such set keeps the
request the code would have left waiting: its newest that may still be decided (the policy's
``original_requests_decidable``, read here from the historical models: its share live, not
revoked, started, not expired and its case open, and still held by the requester, an active
account), or its newest when none may be. The others are closed as the code closes a request a
new one replaces (``services._original_requests_supersede``): withdrawn, no decider.

Only rows are changed here, never the audit trail: an event written through the live audit
service would need the audit tables as the code is now, which they are not yet when the planner
runs this before a later audit migration. Each closed request carries a mark in its
``decision_note`` (``CLOSED_MARK`` and the public id of the request kept: shown nowhere for a
withdrawn request), by which ``services.original_requests_closed_by_migration_record`` records it
after ``migrate`` (``original_request.withdrawn``, reason ``superseded``, by the system; the
sharing app's post_migrate receiver) and then clears the mark. Backwards: nothing (the closed
requests stay closed). Migration 0016 then has the database refuse a second one."""

from django.db import migrations
from django.db.models import Count
from django.utils import timezone

#: the start of the mark a closed request carries until its closure is recorded: the same as
#: ``services.ORIGINAL_REQUEST_CLOSED_MARK`` (a migration does not import the code it may outlive)
CLOSED_MARK = "sharing-0015:superseded-by:"


def _decidable(req, now, grant_members) -> bool:
    """``policy.original_requests_decidable`` for one request on the historical models."""
    grant, user = req.grant, req.requested_by
    live = (grant.revoked_at is None and grant.starts_at <= now < grant.expires_at
            and grant.case.status == "open")
    if not live or user is None or not user.is_active:
        return False
    if grant.grantee_id is not None:
        return grant.grantee_id == req.requested_by_id
    if grant.grantee_email:
        return False  # sent to an address, not accepted yet
    return (grant.pk, req.requested_by_id) in grant_members


def _close_older_pending(apps, schema_editor):
    OriginalRequest = apps.get_model("sharing", "OriginalRequest")
    Grant = apps.get_model("sharing", "Grant")
    pending = OriginalRequest.objects.filter(status="pending")
    pairs = (pending.values("case_id", "requested_by_id").annotate(n=Count("id")).filter(n__gt=1)
             .values_list("case_id", "requested_by_id").order_by("case_id", "requested_by_id"))
    now = timezone.now()
    for case_id, requested_by_id in list(pairs):
        reqs = list(pending.filter(case_id=case_id, requested_by_id=requested_by_id)
                    .select_related("grant__case", "requested_by").order_by("-created_at", "-id"))
        members = set(Grant.group_members.through.objects
                      .filter(grant_id__in={r.grant_id for r in reqs}, user_id=requested_by_id)
                      .values_list("grant_id", "user_id"))
        kept = next((r for r in reqs if _decidable(r, now, members)), reqs[0])
        for req in sorted((r for r in reqs if r.pk != kept.pk), key=lambda r: r.pk):
            req.status, req.decided_by, req.decided_at = "withdrawn", None, now
            req.decision_note = f"{CLOSED_MARK}{kept.public_id}"
            req.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])


class Migration(migrations.Migration):

    dependencies = [
        ("sharing", "0014_grant_case_title_at_end"),
    ]

    operations = [
        migrations.RunPython(_close_older_pending, migrations.RunPython.noop),
    ]
