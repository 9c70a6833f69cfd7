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
database refuse a second one.

The scenarios share one trip through the migrations (``migrated``): from the latest state back to
0013, forward to 0014, to 0015, then ``manage.py migrate``. Each scenario's rows are made in
organizations of their own at the state before the migration it is about (the earlier scenarios'
rows stay) and read right after it; what is checked once every migration is applied the tests
read from the tables (each test's own writes rolled back)."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps as live_apps
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.sharing import policy
from apps.sharing.apps import original_requests_closed_by_migration
from apps.sharing.models import OriginalRequest as LiveRequest
from apps.sharing.services import ORIGINAL_REQUEST_CLOSED_MARK
from tests.factories import CaseFactory, OrganizationFactory, UserFactory
from tests.migrating import Migrator, module_trip

pytestmark = pytest.mark.django_db

BEFORE_TITLES = [("sharing", "0013_notification_about")]
TITLES = [("sharing", "0014_grant_case_title_at_end")]
BEFORE_CLOSE, CLOSE = TITLES, [("sharing", "0015_original_requests_one_pending")]
WITHDRAWN = "original_request.withdrawn"


def _migrate_all():
    """``manage.py migrate``: every migration applied, then the post_migrate receivers."""
    call_command("migrate", verbosity=0, interactive=False)


@pytest.fixture(scope="module")
def migrated(django_db_setup, django_db_blocker):
    """Every scenario's rows made before its migration and read after it, in one trip that ends
    with ``manage.py migrate``; the tables then left with every migration applied (also when a
    step fails) and emptied, as the later tests expect them."""
    yield from module_trip(django_db_blocker, _trip)


def _trip(migrator: Migrator) -> SimpleNamespace:
    seen = SimpleNamespace()
    old = migrator.migrate(BEFORE_TITLES)  # 0016's index dropped, 0015 and 0014's data steps undone as no-ops
    out = StringIO()
    call_command("showmigrations", "sharing", stdout=out)
    seen.listed_back = out.getvalue()
    seen.titles_made = _made_titles(old)
    new = migrator.migrate(TITLES)
    seen.titles = dict(new.get_model("sharing", "Grant").objects.values_list("pk", "case_title_at_end"))
    seen.closing = _made_closing(new)
    seen.deciding = _made_deciding(new)
    closed = migrator.migrate(CLOSE)
    seen.requests = {r.pk: r for r in closed.get_model("sharing", "OriginalRequest").objects.all()}
    # the live code on the rows 0015 left, before every migration is applied (as 0015 left them)
    seen.live_requests = {r.pk: r for r in LiveRequest.objects.select_related("grant__case", "requested_by")}
    seen.decidable = {pk: policy.original_request_decidable(r) for pk, r in seen.live_requests.items()}
    # the migration wrote nothing to the trail (its tables may not be as the live audit code wants)
    seen.withdrawn_after_0015 = AuditEvent.objects.filter(action=WITHDRAWN).count()
    # nor does the receiver while a migration is still to be applied
    original_requests_closed_by_migration(live_apps.get_app_config("sharing"), using="default", plan=[])
    seen.withdrawn_after_early_receiver = AuditEvent.objects.filter(action=WITHDRAWN).count()
    _migrate_all()  # manage.py migrate: the closures recorded once the tables are as the code is
    return seen


def _edited(case, *fields):
    """The trail's record of an edit of ``case`` (as ``cases.services.case_update`` writes it), now."""
    record(action="case.edited", organization_id=case.organization_id, target=case,
           details={"fields": sorted(fields)})
    time.sleep(0.002)  # the next timestamps read are later


def _made_titles(old) -> SimpleNamespace:
    """At 0013. cases' and audit's tables are as now (only sharing went back): their rows by the
    current models."""
    now = timezone.now()
    renamed, edited, renamed_before, unchanged = CaseFactory(), CaseFactory(), CaseFactory(), CaseFactory()
    Case = type(renamed)
    Grant = old.get_model("sharing", "Grant")

    def grant(case, **kwargs):
        return Grant.objects.create(organization_id=case.organization_id, case_id=case.pk,
                                    grantee_id=UserFactory().pk, permissions=["view"], **kwargs).pk

    made = SimpleNamespace()
    # renamed since they ended
    made.revoked = grant(renamed, expires_at=now + timedelta(days=1), revoked_at=now - timedelta(days=2))
    made.ran_out = grant(renamed, expires_at=now - timedelta(days=2))
    made.live = grant(renamed, expires_at=now + timedelta(days=1))
    _edited(renamed, "title", "referring_question")
    # closed, reopened, its question and its clinician changed since it ended, never renamed
    made.edited_since = grant(edited, expires_at=now - timedelta(days=2))
    _edited(edited, "referring_question")
    _edited(edited, "responsible_clinician")
    record(action="case.closed", organization_id=edited.organization_id, target=edited)
    # renamed while the share still ran, which ended later; the case closed since
    _edited(renamed_before, "title")
    made.ended_after_rename = grant(renamed_before, expires_at=timezone.now())
    made.ended_unchanged = grant(unchanged, expires_at=now - timedelta(days=2))
    time.sleep(0.002)
    later = timezone.now()
    # each case but the unchanged one changed after its shares ended (what 0014 looked at before)
    Case.objects.filter(pk__in=[renamed.pk, edited.pk, renamed_before.pk]).update(updated_at=later)
    Case.objects.filter(pk=unchanged.pk).update(updated_at=now - timedelta(days=3))
    return made


def test_only_shares_whose_case_was_renamed_after_they_ended_do_not_know_their_title(migrated):
    made = migrated.titles_made
    assert migrated.titles == {made.revoked: "", made.ran_out: "", made.live: None, made.edited_since: None,
                               made.ended_after_rename: None, made.ended_unchanged: None}


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


def _made_closing(old) -> SimpleNamespace:
    """At 0014: two people's requests, one of them with three waiting for one case."""
    made = SimpleNamespace(org=OrganizationFactory())
    made.case, other_case = CaseFactory(organization=made.org), CaseFactory(organization=made.org)
    made.asker, colleague = UserFactory(), UserFactory()
    share, ask = _requests(old, made.org)
    made.consult, made.board, elsewhere, theirs = share(made.case, made.asker), share(made.case, made.asker), \
        share(other_case, made.asker), share(made.case, colleague)
    made.oldest, made.older, made.newest = ask(made.consult, made.asker), ask(made.board, made.asker), \
        ask(made.consult, made.asker)
    made.alone = ask(elsewhere, made.asker)  # another case: its only one
    made.declined, made.kept = ask(theirs, colleague, status="declined"), ask(theirs, colleague)
    return made


def test_older_pending_requests_of_one_person_and_case_are_closed_the_newest_kept_and_recorded_after(migrated):
    made, requests = migrated.closing, migrated.requests
    org, case, asker, oldest, older, newest = made.org, made.case, made.asker, made.oldest, made.older, made.newest
    statuses = {pk: r.status for pk, r in requests.items() if r.organization_id == org.pk}
    assert statuses == {oldest.pk: "withdrawn", older.pk: "withdrawn", newest.pk: "pending",
                        made.alone.pk: "pending", made.declined.pk: "declined", made.kept.pk: "pending"}
    for closed in (oldest, older):
        row = requests[closed.pk]
        assert row.decided_by_id is None and row.decided_at is not None
        assert row.decision_note == f"{ORIGINAL_REQUEST_CLOSED_MARK}{newest.public_id}"
    # the migration wrote nothing to the trail (its tables may not be as the live audit code wants)
    assert migrated.withdrawn_after_0015 == 0
    # nor does the receiver while a migration is still to be applied
    assert migrated.withdrawn_after_early_receiver == 0

    # manage.py migrate (at the end of the trip): the closures recorded once the tables are as the code is
    withdrawn = AuditEvent.objects.filter(action=WITHDRAWN, organization_id=org.pk)
    for closed, grant in ((oldest, made.consult), (older, made.board)):
        event = withdrawn.get(target_id=str(closed.public_id))
        assert event.actor_id is None and event.actor_type == "system" and event.organization_id == org.pk
        assert event.details == {"reason": "superseded", "grant": str(grant.public_id),
                                 "superseded_by": str(newest.public_id), "by": "migration"}
        assert str(event.case_ref) == str(case.public_id)
        assert LiveRequest.objects.get(pk=closed.pk).decision_note == ""  # the mark cleared
    assert withdrawn.count() == 2
    call_command("verify_audit", stdout=StringIO())  # the chain holds them: CommandError otherwise
    _migrate_all()  # again: nothing recorded twice
    assert withdrawn.count() == 2

    # 0016: the database refuses a second waiting request of one person for one case
    with pytest.raises(IntegrityError), transaction.atomic():
        LiveRequest.objects.create(organization_id=org.pk, case_id=case.pk, grant_id=made.board.pk,
                                   requested_by_id=asker.pk, reason="Again.")
    # closed ones are not counted: another closed request of the pair is accepted
    LiveRequest.objects.create(organization_id=org.pk, case_id=case.pk, grant_id=made.board.pk,
                               requested_by_id=asker.pk, reason="Again.", status="withdrawn")


def _made_deciding(old) -> SimpleNamespace:
    """At 0014: sets of one person's waiting requests for one case, under shares in every state."""
    now = timezone.now()
    made = SimpleNamespace(org=OrganizationFactory())
    review, board_case, lapsed, left = (CaseFactory(organization=made.org) for _ in range(4))
    asker, former = UserFactory(), UserFactory()
    share, ask = _requests(old, made.org)
    # a live share asked under first, then one that has run out since (the review's case)
    made.live_first = ask(share(review, asker), asker)
    made.ran_out_later = ask(share(review, asker, expires_at=now - timedelta(hours=1),
                                   starts_at=now - timedelta(days=3)), asker)
    # a group share the requester is a member of, then a share not started yet, then a revoked one
    group = share(board_case, group_name="Thoracic board")
    group.group_members.add(asker.pk)
    made.in_group = ask(group, asker)
    made.not_started = ask(share(board_case, asker, starts_at=now + timedelta(days=1),
                                 expires_at=now + timedelta(days=2)), asker)
    made.revoked = ask(share(board_case, asker, revoked_at=now - timedelta(hours=1)), asker)
    # none may be decided: the newest is kept
    made.neither_old = ask(share(lapsed, asker, expires_at=now - timedelta(days=1),
                                 starts_at=now - timedelta(days=3)), asker)
    made.neither_new = ask(share(lapsed, asker, expires_at=now - timedelta(hours=1),
                                 starts_at=now - timedelta(days=3)), asker)
    # an account made inactive: none of its requests may be decided, the newest is kept
    made.theirs_old, made.theirs_new = ask(share(left, former), former), ask(share(left, former), former)
    type(former).objects.filter(pk=former.pk).update(is_active=False)
    return made


def test_the_request_kept_is_the_newest_that_may_still_be_decided(migrated):
    made = migrated.deciding
    rows = {pk: r for pk, r in migrated.live_requests.items() if r.organization_id == made.org.pk}
    pending = {pk for pk, r in rows.items() if r.status == "pending"}
    assert pending == {made.live_first.pk, made.in_group.pk, made.neither_new.pk, made.theirs_new.pk}
    assert migrated.decidable[made.live_first.pk] is True
    assert migrated.decidable[made.in_group.pk] is True
    closures = ((made.ran_out_later, made.live_first), (made.not_started, made.in_group),
                (made.revoked, made.in_group), (made.neither_old, made.neither_new),
                (made.theirs_old, made.theirs_new))
    for closed, kept in closures:
        assert rows[closed.pk].status == "withdrawn"
        assert rows[closed.pk].decision_note == f"{ORIGINAL_REQUEST_CLOSED_MARK}{kept.public_id}"
        assert migrated.decidable[closed.pk] is False

    # recorded by manage.py migrate, at the end of the trip
    superseded_by = dict(AuditEvent.objects.filter(action=WITHDRAWN, organization_id=made.org.pk)
                         .values_list("target_id", "details"))
    assert {k: v["superseded_by"] for k, v in superseded_by.items()} == {
        str(closed.public_id): str(kept.public_id) for closed, kept in closures}
    call_command("verify_audit", stdout=StringIO())


def test_the_migrations_go_back_without_undoing_the_clean_up(migrated):
    # from every migration applied to 0013: 0016's index dropped, 0015 and 0014's data steps undone as no-ops
    assert "[ ] 0014_grant_case_title_at_end" in migrated.listed_back
