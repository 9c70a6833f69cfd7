"""The sharing app's data migrations, run on rows made as the app left them before.

0014: a share that had ended before titles were kept, whose case was renamed since (the trail's
``case.edited`` naming "title", after the share's end), is marked as not knowing the title it
ended with (Shared with me names it by a neutral label); others keep none, whatever else changed
their case since (closed, reopened, another field edited).
0015: requests for the original DICOM made before one was kept a person and case (5d75554) could
leave two or more of one requester for one case waiting: the one kept is the newest that may still
be decided (else the newest), the others closed as a request a new one replaces is closed
(withdrawn). The migration changes rows only; their closure is recorded after ``migrate`` (reason
``superseded``, by the system) by the app's post_migrate receiver, once. 0016 then has the
database refuse a second one."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps as live_apps
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.sharing import policy
from apps.sharing.apps import original_requests_closed_by_migration
from apps.sharing.models import OriginalRequest as LiveRequest
from apps.sharing.services import ORIGINAL_REQUEST_CLOSED_MARK
from tests.factories import CaseFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_TITLES = [("sharing", "0013_notification_about")]
TITLES = [("sharing", "0014_grant_case_title_at_end")]
BEFORE_CLOSE, CLOSE = TITLES, [("sharing", "0015_original_requests_one_pending")]
WITHDRAWN = "original_request.withdrawn"


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _migrate_all():
    """``manage.py migrate``: every migration applied, then the post_migrate receivers."""
    call_command("migrate", verbosity=0, interactive=False)


@pytest.fixture(autouse=True)
def _latest_after():
    """The tables left as the later tests expect them: every migration applied."""
    yield
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _edited(case, *fields):
    """The trail's record of an edit of ``case`` (as ``cases.services.case_update`` writes it), now."""
    record(action="case.edited", organization_id=case.organization_id, target=case,
           details={"fields": sorted(fields)})
    time.sleep(0.002)  # the next timestamps read are later


def test_only_shares_whose_case_was_renamed_after_they_ended_do_not_know_their_title():
    old = _migrate(BEFORE_TITLES)
    now = timezone.now()
    try:
        # cases' and audit's tables are as now (only sharing went back): their rows by the current models
        renamed, edited, renamed_before, unchanged = CaseFactory(), CaseFactory(), CaseFactory(), CaseFactory()
        Case = type(renamed)
        Grant = old.get_model("sharing", "Grant")

        def grant(case, **kwargs):
            return Grant.objects.create(organization_id=case.organization_id, case_id=case.pk,
                                        grantee_id=UserFactory().pk, permissions=["view"], **kwargs)

        # renamed since they ended
        revoked = grant(renamed, expires_at=now + timedelta(days=1), revoked_at=now - timedelta(days=2))
        ran_out = grant(renamed, expires_at=now - timedelta(days=2))
        live = grant(renamed, expires_at=now + timedelta(days=1))
        _edited(renamed, "title", "referring_question")
        # closed, reopened, its question and its clinician changed since it ended, never renamed
        edited_since = grant(edited, expires_at=now - timedelta(days=2))
        _edited(edited, "referring_question")
        _edited(edited, "responsible_clinician")
        record(action="case.closed", organization_id=edited.organization_id, target=edited)
        # renamed while the share still ran, which ended later; the case closed since
        _edited(renamed_before, "title")
        ended_after_rename = grant(renamed_before, expires_at=timezone.now())
        ended_unchanged = grant(unchanged, expires_at=now - timedelta(days=2))
        time.sleep(0.002)
        later = timezone.now()
        # each case but the unchanged one changed after its shares ended (what 0014 looked at before)
        Case.objects.filter(pk__in=[renamed.pk, edited.pk, renamed_before.pk]).update(updated_at=later)
        Case.objects.filter(pk=unchanged.pk).update(updated_at=now - timedelta(days=3))
    finally:
        new = _migrate(TITLES)
    titles = dict(new.get_model("sharing", "Grant").objects.values_list("pk", "case_title_at_end"))
    assert titles == {revoked.pk: "", ran_out.pk: "", live.pk: None, edited_since.pk: None,
                      ended_after_rename.pk: None, ended_unchanged.pk: None}


def _requests(old, org):
    """Helpers writing shares and requests with the historical models (sharing at 0014)."""
    Grant = old.get_model("sharing", "Grant")
    OriginalRequest = old.get_model("sharing", "OriginalRequest")
    hours = iter(range(50, 0, -1))  # each request made after the one before

    def share(case, grantee=None, **kwargs):
        kwargs.setdefault("expires_at", timezone.now() + timedelta(days=1))
        return Grant.objects.create(organization_id=org.pk, case_id=case.pk,
                                    grantee_id=grantee.pk if grantee else None, permissions=["view"], **kwargs)

    def ask(grant, by, status="pending"):
        req = OriginalRequest.objects.create(organization_id=org.pk, case_id=grant.case_id, grant=grant,
                                             requested_by_id=by.pk, reason="Thin slices.", status=status)
        OriginalRequest.objects.filter(pk=req.pk).update(created_at=timezone.now() - timedelta(hours=next(hours)))
        return req

    return share, ask


def test_older_pending_requests_of_one_person_and_case_are_closed_the_newest_kept_and_recorded_after():
    old = _migrate(BEFORE_CLOSE)
    try:
        org = OrganizationFactory()
        case, other_case = CaseFactory(organization=org), CaseFactory(organization=org)
        asker, colleague = UserFactory(), UserFactory()
        share, ask = _requests(old, org)
        consult, board, elsewhere, theirs = share(case, asker), share(case, asker), share(other_case, asker), \
            share(case, colleague)
        oldest, older, newest = ask(consult, asker), ask(board, asker), ask(consult, asker)
        alone = ask(elsewhere, asker)  # another case: its only one
        declined, kept = ask(theirs, colleague, status="declined"), ask(theirs, colleague)
    finally:
        new = _migrate(CLOSE)
    OriginalRequest = new.get_model("sharing", "OriginalRequest")
    statuses = dict(OriginalRequest.objects.values_list("pk", "status"))
    assert statuses == {oldest.pk: "withdrawn", older.pk: "withdrawn", newest.pk: "pending", alone.pk: "pending",
                        declined.pk: "declined", kept.pk: "pending"}
    for closed in (oldest, older):
        row = OriginalRequest.objects.get(pk=closed.pk)
        assert row.decided_by_id is None and row.decided_at is not None
        assert row.decision_note == f"{ORIGINAL_REQUEST_CLOSED_MARK}{newest.public_id}"
    # the migration wrote nothing to the trail (its tables may not be as the live audit code wants)
    assert not AuditEvent.objects.filter(action=WITHDRAWN).exists()
    # nor does the receiver while a migration is still to be applied
    original_requests_closed_by_migration(live_apps.get_app_config("sharing"), using="default", plan=[])
    assert not AuditEvent.objects.filter(action=WITHDRAWN).exists()

    _migrate_all()  # manage.py migrate: the closures recorded once the tables are as the code is
    for closed, grant in ((oldest, consult), (older, board)):
        event = AuditEvent.objects.get(action=WITHDRAWN, target_id=str(closed.public_id))
        assert event.actor_id is None and event.actor_type == "system" and event.organization_id == org.pk
        assert event.details == {"reason": "superseded", "grant": str(grant.public_id),
                                 "superseded_by": str(newest.public_id), "by": "migration"}
        assert str(event.case_ref) == str(case.public_id)
        assert LiveRequest.objects.get(pk=closed.pk).decision_note == ""  # the mark cleared
    assert AuditEvent.objects.filter(action=WITHDRAWN).count() == 2
    call_command("verify_audit", stdout=StringIO())  # the chain holds them: CommandError otherwise
    _migrate_all()  # again: nothing recorded twice
    assert AuditEvent.objects.filter(action=WITHDRAWN).count() == 2

    # 0016: the database refuses a second waiting request of one person for one case
    with pytest.raises(IntegrityError), transaction.atomic():
        LiveRequest.objects.create(organization_id=org.pk, case_id=case.pk, grant_id=board.pk,
                                   requested_by_id=asker.pk, reason="Again.")
    # closed ones are not counted: another closed request of the pair is accepted
    LiveRequest.objects.create(organization_id=org.pk, case_id=case.pk, grant_id=board.pk,
                               requested_by_id=asker.pk, reason="Again.", status="withdrawn")


def test_the_request_kept_is_the_newest_that_may_still_be_decided():
    old = _migrate(BEFORE_CLOSE)
    now = timezone.now()
    try:
        org = OrganizationFactory()
        review, board_case, lapsed, left = (CaseFactory(organization=org) for _ in range(4))
        asker, former = UserFactory(), UserFactory()
        share, ask = _requests(old, org)
        # a live share asked under first, then one that has run out since (the review's case)
        live_first = ask(share(review, asker), asker)
        ran_out_later = ask(share(review, asker, expires_at=now - timedelta(hours=1),
                                  starts_at=now - timedelta(days=3)), asker)
        # a group share the requester is a member of, then a share not started yet, then a revoked one
        group = share(board_case, group_name="Thoracic board")
        group.group_members.add(asker.pk)
        in_group = ask(group, asker)
        not_started = ask(share(board_case, asker, starts_at=now + timedelta(days=1),
                               expires_at=now + timedelta(days=2)), asker)
        revoked = ask(share(board_case, asker, revoked_at=now - timedelta(hours=1)), asker)
        # none may be decided: the newest is kept
        neither_old = ask(share(lapsed, asker, expires_at=now - timedelta(days=1),
                                starts_at=now - timedelta(days=3)), asker)
        neither_new = ask(share(lapsed, asker, expires_at=now - timedelta(hours=1),
                                starts_at=now - timedelta(days=3)), asker)
        # an account made inactive: none of its requests may be decided, the newest is kept
        theirs_old, theirs_new = ask(share(left, former), former), ask(share(left, former), former)
        type(former).objects.filter(pk=former.pk).update(is_active=False)
    finally:
        _migrate(CLOSE)
    rows = {r.pk: r for r in LiveRequest.objects.select_related("grant__case", "requested_by")}
    pending = {pk for pk, r in rows.items() if r.status == "pending"}
    assert pending == {live_first.pk, in_group.pk, neither_new.pk, theirs_new.pk}
    assert policy.original_request_decidable(rows[live_first.pk]) is True
    assert policy.original_request_decidable(rows[in_group.pk]) is True
    for closed, kept in ((ran_out_later, live_first), (not_started, in_group), (revoked, in_group),
                         (neither_old, neither_new), (theirs_old, theirs_new)):
        assert rows[closed.pk].status == "withdrawn"
        assert rows[closed.pk].decision_note == f"{ORIGINAL_REQUEST_CLOSED_MARK}{kept.public_id}"
        assert policy.original_request_decidable(rows[closed.pk]) is False

    _migrate_all()
    superseded_by = dict(AuditEvent.objects.filter(action=WITHDRAWN).values_list("target_id", "details"))
    assert {k: v["superseded_by"] for k, v in superseded_by.items()} == {
        str(ran_out_later.public_id): str(live_first.public_id), str(not_started.public_id): str(in_group.public_id),
        str(revoked.public_id): str(in_group.public_id), str(neither_old.public_id): str(neither_new.public_id),
        str(theirs_old.public_id): str(theirs_new.public_id)}
    call_command("verify_audit", stdout=StringIO())


def test_the_migrations_go_back_without_undoing_the_clean_up():
    _migrate([("sharing", "0016_originalrequest_one_pending")])
    _migrate(BEFORE_TITLES)  # 0016's index dropped, 0015 and 0014's data steps undone as no-ops
    out = StringIO()
    call_command("showmigrations", "sharing", stdout=out)
    assert "[ ] 0014_grant_case_title_at_end" in out.getvalue()
