"""The sharing app's data migrations, run on rows made as the app left them before.

0014: a share that had ended before titles were kept, whose case changed since, is marked as not
knowing the title it ended with (Shared with me names it by a neutral label); others keep none.
0015: requests for the original DICOM made before one was kept a person and case (5d75554) could
leave two or more of one requester for one case waiting: the newest is kept, the older ones closed
as a request a new one replaces is closed (withdrawn, recorded with reason ``superseded``), and
0016 then has the database refuse a second one."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.audit.models import AuditEvent
from tests.factories import CaseFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_TITLES = [("sharing", "0013_notification_about")]
TITLES = [("sharing", "0014_grant_case_title_at_end")]
BEFORE_CLOSE, CLOSE, ONE_PENDING = TITLES, [("sharing", "0015_original_requests_one_pending")], [
    ("sharing", "0016_originalrequest_one_pending")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def _latest_after():
    """The tables left as the later tests expect them: every migration applied."""
    yield
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_shares_that_ended_before_their_case_changed_do_not_know_their_title():
    old = _migrate(BEFORE_TITLES)
    now = timezone.now()
    try:
        # cases' tables are as now (only sharing went back): their rows by the current model
        changed, unchanged = CaseFactory(), CaseFactory()
        Grant = old.get_model("sharing", "Grant")

        def grant(case, **kwargs):
            return Grant.objects.create(organization_id=case.organization_id, case_id=case.pk,
                                        grantee_id=UserFactory().pk, permissions=["view"], **kwargs)

        revoked = grant(changed, expires_at=now + timedelta(days=1), revoked_at=now - timedelta(days=2))
        ran_out = grant(changed, expires_at=now - timedelta(days=2))
        live = grant(changed, expires_at=now + timedelta(days=1))
        ended_unchanged = grant(unchanged, expires_at=now - timedelta(days=2))
        type(changed).objects.filter(pk=changed.pk).update(updated_at=now - timedelta(days=1))
        type(unchanged).objects.filter(pk=unchanged.pk).update(updated_at=now - timedelta(days=3))
    finally:
        new = _migrate(TITLES)
    titles = dict(new.get_model("sharing", "Grant").objects.values_list("pk", "case_title_at_end"))
    assert titles == {revoked.pk: "", ran_out.pk: "", live.pk: None, ended_unchanged.pk: None}


def test_older_pending_requests_of_one_person_and_case_are_closed_the_newest_kept():
    old = _migrate(BEFORE_CLOSE)
    try:
        org = OrganizationFactory()
        case, other_case = CaseFactory(organization=org), CaseFactory(organization=org)
        asker, colleague = UserFactory(), UserFactory()
        Grant = old.get_model("sharing", "Grant")
        OriginalRequest = old.get_model("sharing", "OriginalRequest")

        def share(case, grantee):
            return Grant.objects.create(organization_id=org.pk, case_id=case.pk, grantee_id=grantee.pk,
                                        permissions=["view"], expires_at=timezone.now() + timedelta(days=1))

        consult, board, elsewhere, theirs = share(case, asker), share(case, asker), share(other_case, asker), \
            share(case, colleague)
        hours = iter(range(10, 0, -1))

        def ask(grant, by, status="pending"):
            req = OriginalRequest.objects.create(organization_id=org.pk, case_id=grant.case_id, grant=grant,
                                                 requested_by_id=by.pk, reason="Thin slices.", status=status)
            OriginalRequest.objects.filter(pk=req.pk).update(created_at=timezone.now() - timedelta(hours=next(hours)))
            return req

        oldest, older, newest = ask(consult, asker), ask(board, asker), ask(consult, asker)
        alone = ask(elsewhere, asker)  # another case: its only one
        declined, kept = ask(theirs, colleague, status="declined"), ask(theirs, colleague)
    finally:
        new = _migrate(CLOSE)
    OriginalRequest = new.get_model("sharing", "OriginalRequest")
    statuses = dict(OriginalRequest.objects.values_list("pk", "status"))
    assert statuses == {oldest.pk: "withdrawn", older.pk: "withdrawn", newest.pk: "pending", alone.pk: "pending",
                        declined.pk: "declined", kept.pk: "pending"}
    for closed, grant in ((oldest, consult), (older, board)):
        row = OriginalRequest.objects.get(pk=closed.pk)
        assert row.decided_by_id is None and row.decided_at is not None
        event = AuditEvent.objects.get(action="original_request.withdrawn", target_id=str(closed.public_id))
        assert event.actor_id is None and event.actor_type == "system" and event.organization_id == org.pk
        assert event.details == {"reason": "superseded", "grant": str(grant.public_id),
                                 "superseded_by": str(newest.public_id)}
        assert str(event.case_ref) == str(case.public_id)
    assert AuditEvent.objects.filter(action="original_request.withdrawn").count() == 2
    call_command("verify_audit", stdout=StringIO())  # the chain holds them: CommandError otherwise

    new = _migrate(ONE_PENDING)
    OriginalRequest = new.get_model("sharing", "OriginalRequest")
    with pytest.raises(IntegrityError), transaction.atomic():
        OriginalRequest.objects.create(organization_id=org.pk, case_id=case.pk, grant_id=board.pk,
                                       requested_by_id=asker.pk, reason="Again.")
    # closed ones are not counted: another closed request of the pair is accepted
    OriginalRequest.objects.create(organization_id=org.pk, case_id=case.pk, grant_id=board.pk,
                                   requested_by_id=asker.pk, reason="Again.", status="withdrawn")


def test_the_migrations_go_back_without_undoing_the_clean_up():
    _migrate(ONE_PENDING)
    _migrate(BEFORE_TITLES)  # 0016's index dropped, 0015 and 0014's data steps undone as no-ops
    out = StringIO()
    call_command("showmigrations", "sharing", stdout=out)
    assert "[ ] 0014_grant_case_title_at_end" in out.getvalue()
