"""Must show 2: changing one event's row with raw SQL makes verify_audit exit 1 naming that event;
on PostgreSQL the database refuses the UPDATE (and DELETE) in the first place."""

from __future__ import annotations

import contextlib

import pytest
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.organizations.models import Role
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

TABLE = AuditEvent._meta.db_table
TRIGGER = "audit_auditevent_append_only"
HEAD_TABLE, HEAD_TRIGGER = "audit_auditchain", "audit_auditchain_forward_only"
ON_POSTGRES = connection.vendor == "postgresql"


@contextlib.contextmanager
def trigger_disabled(table: str = TABLE, trigger: str = TRIGGER):
    """Tampering as an attacker with table-owner rights would: switch the trigger off (PostgreSQL),
    inside the test's transaction, and on again."""
    if ON_POSTGRES:
        with connection.cursor() as cur:
            # run the deferred foreign-key checks of this transaction now: PostgreSQL refuses to
            # ALTER a table with pending trigger events
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cur.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    try:
        yield
    finally:
        if ON_POSTGRES:
            with connection.cursor() as cur:
                cur.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
                cur.execute("SET CONSTRAINTS ALL DEFERRED")


def _trail(org, n=5):
    return [record(action="case.viewed", organization=org, details={"i": i}) for i in range(n)]


def _stamp(event: AuditEvent) -> str:
    return f"{AuditEvent.objects.get(pk=event.pk).created_at:%Y-%m-%dT%H:%M:%S.%f}"


def test_intact_trail_exits_0_with_a_count(org_a, org_b, verify_audit):
    _trail(org_a, 3)
    _trail(org_b, 2)
    record(action="auth.signed_in")
    code, out = verify_audit()
    assert code == 0
    assert "6 events in 3 chains" in out
    code, out = verify_audit("--org", org_a.slug)
    assert (code, "3 events in 1 chain " in out) == (0, True)


@pytest.mark.parametrize(("column", "value"), [
    ("action", "'case.closed'"),
    ("outcome", "'denied'"),
    ("details", "'{\"i\": 99}'"),
    ("actor_label", "'someone-else@example.org'"),
    ("created_at", "created_at"),  # see below: shifted by a second
])
def test_raw_sql_change_of_one_row_is_named(org_a, org_b, verify_audit, column, value):
    events = _trail(org_a)
    _trail(org_b)
    victim = events[2]
    if column == "created_at":
        value = "created_at + interval '1 second'" if ON_POSTGRES else "datetime(created_at, '+1 second')"
    with trigger_disabled(), connection.cursor() as cur:
        cur.execute(f"UPDATE {TABLE} SET {column} = {value} WHERE id = %s", [victim.pk])
        assert cur.rowcount == 1
    code, message = verify_audit()
    assert code == 1
    assert f"event id={victim.pk} " in message
    assert _stamp(victim) in message
    assert "changed" in message
    # the other organization's chain is untouched
    assert verify_audit("--org", org_b.slug)[0] == 0
    assert verify_audit("--org", org_a.slug)[0] == 1


def test_deleted_row_names_the_event_after_it(org_a, verify_audit):
    events = _trail(org_a)
    with trigger_disabled(), connection.cursor() as cur:
        cur.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[1].pk])
    code, message = verify_audit()
    assert code == 1
    assert f"event id={events[2].pk} " in message
    assert "missing" in message


def test_deleted_last_row_is_caught_by_the_chain_head(org_a, verify_audit):
    events = _trail(org_a)
    with trigger_disabled(), connection.cursor() as cur:
        cur.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[-1].pk])
    code, message = verify_audit("--org", org_a.slug)
    assert code == 1
    assert "head says 5 events but 4 were found" in message


def test_rehashing_one_row_still_breaks_the_next_link(org_a, verify_audit):
    """An attacker who recomputes the changed row's own hash breaks the link to the next event."""
    from apps.audit.chain import compute_hash

    events = _trail(org_a)
    victim = AuditEvent.objects.get(pk=events[1].pk)
    fields = {f: getattr(victim, f) for f in ("created_at", "organization_id", "actor_id", "actor_type",
                                              "actor_label", "link_ref", "ip", "user_agent", "target_type",
                                              "target_id", "case_ref", "study_ref", "outcome", "details", "seq",
                                              "prev_hash")}
    new_hash = compute_hash(**fields, action="case.closed")
    with trigger_disabled(), connection.cursor() as cur:
        cur.execute(f"UPDATE {TABLE} SET action = 'case.closed', hash = %s WHERE id = %s", [new_hash, victim.pk])
    code, message = verify_audit()
    assert code == 1
    assert f"event id={events[2].pk} " in message


def test_unknown_org_is_an_error(verify_audit):
    code, message = verify_audit("--org", "nope")
    assert code == 2 and "nope" in message


@pytest.mark.skipif(not ON_POSTGRES, reason="the refusing trigger exists on PostgreSQL only; "
                                             "SQLite relies on the model's refusals (test_chain.py)")
def test_postgres_trigger_refuses_update_and_delete(org_a, verify_audit):
    events = _trail(org_a, 2)
    for sql in (f"UPDATE {TABLE} SET action = 'case.closed' WHERE id = %s", f"DELETE FROM {TABLE} WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, [events[0].pk])
    assert AuditEvent.objects.get(pk=events[0].pk).action == "case.viewed"
    assert verify_audit()[0] == 0


@pytest.mark.skipif(not ON_POSTGRES, reason="TRUNCATE and the trigger: PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_truncate_flush_still_works_with_the_trigger():
    """transaction=True tests end with a flush (tests/conftest.py: the audit tables TRUNCATEd, the
    others emptied with DELETE): row-level triggers do not fire on TRUNCATE, and the statement-level
    one (0008) lets it through on the test connections, which say it is maintenance
    (portal/settings/test.py; tests/audit/test_wiped.py checks that others are refused). Every
    table but content types and permissions is left empty, whatever refers to what."""
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command

    from tests.conftest import FLUSH_KEPT
    from tests.factories import CaseFactory, member

    org = OrganizationFactory(slug="flush")
    clinician = member(org, Role.CLINICIAN, email="flush@flush.example")
    CaseFactory(organization=org, created_by=clinician)
    record(action="case.viewed", organization=org, actor=clinician)
    content_types = sorted(ContentType.objects.values_list("pk", flat=True))

    call_command("flush", "--no-input", reset_sequences=False)  # as a transactional test ends
    assert not AuditEvent.objects.exists()
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cur:
        filled = []
        for table in tables:
            cur.execute(f"SELECT EXISTS (SELECT 1 FROM {connection.ops.quote_name(table)})")
            if cur.fetchone()[0]:
                filled.append(table)
    assert sorted(filled) == sorted(FLUSH_KEPT)
    assert sorted(ContentType.objects.values_list("pk", flat=True)) == content_types  # kept, not written back


# --- anchors: a whole tail rewritten by the database's owner ------------------------------------

def _rewrite_from(event: AuditEvent) -> None:
    """What an attacker with the table owner's rights can do against plain hashes: change one
    event, recompute its hash and every later one, and move the chain's head."""
    from apps.audit.chain import HASHED_FIELDS, compute_hash
    from apps.audit.models import AuditChain

    prev = None
    rows = AuditEvent.objects.filter(organization_id=event.organization_id, seq__gte=event.seq).order_by("seq")
    with trigger_disabled(), connection.cursor() as cur:
        for row in rows.values_list(*HASHED_FIELDS):
            fields = {k: v for k, v in zip(HASHED_FIELDS, row, strict=True) if k not in ("id", "hash")}
            if prev is None:
                fields["action"] = "case.closed"
            else:
                fields["prev_hash"] = prev
            prev = compute_hash(**fields)
            cur.execute(f"UPDATE {TABLE} SET action = %s, prev_hash = %s, hash = %s WHERE id = %s",
                        [fields["action"], fields["prev_hash"], prev, row[0]])
    with trigger_disabled(HEAD_TABLE, HEAD_TRIGGER):
        AuditChain.objects.filter(key=event.organization_id).update(last_hash=prev)




def _anchor_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("audit-anchor ")]


def test_verify_prints_one_anchor_per_chain_that_a_later_run_matches(org_a, org_b, verify_audit, tmp_path):
    a = _trail(org_a, 3)
    b = _trail(org_b, 2)
    code, out = verify_audit()
    assert code == 0
    assert sorted(_anchor_lines(out)) == sorted([
        f"audit-anchor chain={org_a.pk} seq=3 sha256={AuditEvent.objects.get(pk=a[-1].pk).hash}",
        f"audit-anchor chain={org_b.pk} seq=2 sha256={AuditEvent.objects.get(pk=b[-1].pk).hash}",
    ])
    noted = tmp_path / "anchors.txt"
    noted.write_text(out)
    _trail(org_a, 2)  # the trail goes on after the anchors were noted
    code, out = verify_audit("--anchors", str(noted))
    assert code == 0 and "2 anchors matched" in out
    assert f"audit-anchor chain={org_a.pk} seq=5 " in out


def test_a_rewritten_tail_passes_the_chain_but_not_an_anchor_noted_before(org_a, org_b, verify_audit, tmp_path):
    events = _trail(org_a, 5)
    _trail(org_b, 2)
    noted = tmp_path / "anchors.txt"
    noted.write_text(verify_audit()[1])
    _rewrite_from(events[1])
    assert verify_audit()[0] == 0  # the chain alone cannot tell: every hash was recomputed
    code, message = verify_audit("--anchors", str(noted))
    assert code == 1
    assert f"event id={events[-1].pk} " in message and "(chain 'alpha', seq 5)" in message
    assert "rewritten" in message
    # an anchor of the other organization alone still matches; --org checks only its own anchors
    assert verify_audit("--org", org_b.slug, "--anchors", str(noted))[0] == 0
    assert verify_audit("--org", org_a.slug, "--anchors", str(noted))[0] == 1


def test_an_anchor_whose_chain_is_gone_is_a_break(org_a, verify_audit, tmp_path):
    from apps.audit.models import AuditChain

    _trail(org_a, 2)
    noted = tmp_path / "anchors.txt"
    noted.write_text(verify_audit()[1])
    with trigger_disabled(), connection.cursor() as cur:
        cur.execute(f"DELETE FROM {TABLE} WHERE organization_id = %s", [org_a.pk])
    with trigger_disabled(HEAD_TABLE, HEAD_TRIGGER):
        AuditChain.objects.filter(key=org_a.pk).delete()
    # nothing left to walk, but the organization's trail began: the chain alone says it is gone
    code, message = verify_audit()
    assert code == 1 and "chain 'alpha'" in message and "every event and the chain's head are missing" in message
    # the organization's note of it cleared too: only the anchors tell
    type(org_a).objects.filter(pk=org_a.pk).update(audit_started_at=None)
    assert verify_audit()[0] == 0  # nothing left to walk
    code, message = verify_audit("--anchors", str(noted))
    assert code == 1 and "chain 'alpha'" in message and "seq 2 is missing" in message


def test_anchors_are_read_out_of_a_log_and_bad_files_are_refused(org_a, verify_audit, tmp_path, caplog):
    from django.conf import settings

    from apps.audit.tasks import audit_anchors_log_task

    assert "apps.audit.tasks.audit_anchors_log_task" in {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    _trail(org_a, 2)
    record(action="auth.signed_in")  # the global chain
    with caplog.at_level("INFO", logger="lightbox.audit.anchors"):
        assert audit_anchors_log_task() == 2
    log = tmp_path / "portal.log"
    log.write_text("2026-12-06 05:00:00 INFO django.request GET /cases/\n"
                   + "".join(f"2026-12-06 06:00:00 INFO {r.name} {r.getMessage()}\n" for r in caplog.records))
    code, out = verify_audit("--anchors", str(log))
    assert code == 0 and "2 anchors matched" in out

    empty = tmp_path / "empty.txt"
    empty.write_text("nothing here\n")
    code, message = verify_audit("--anchors", str(empty))
    assert code == 2 and "no anchor lines" in message
    code, message = verify_audit("--anchors", str(tmp_path / "missing.txt"))
    assert code == 2 and "cannot read" in message


@pytest.mark.skipif(not ON_POSTGRES, reason="two connections at once: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_an_event_appended_while_verifying_is_not_a_cut_tail(monkeypatch, verify_audit):
    """The head and the events are read in one snapshot: an event committed between the two reads
    made a trail in use look cut ("head says 3 events but 4 were found")."""
    from apps.audit import chain
    from tests.threads import in_thread

    org = OrganizationFactory(slug="live")
    _trail(org, 3)
    real = chain.iter_chain_rows
    failures: list[BaseException] = []

    def appended_meanwhile(key, **kwargs):
        in_thread(failures, record, action="case.viewed", organization=org).join()
        return real(key, **kwargs)

    monkeypatch.setattr(chain, "iter_chain_rows", appended_meanwhile)
    code, out = verify_audit("--org", org.slug)
    assert not failures
    assert AuditEvent.objects.filter(organization=org).count() == 4  # it was committed meanwhile
    assert (code, "3 events in 1 chain" in out) == (0, True)


@pytest.mark.skipif(not ON_POSTGRES, reason="the refusing trigger exists on PostgreSQL only")
@pytest.mark.parametrize("sql", [
    "DELETE FROM audit_auditchain WHERE key = %s",
    "UPDATE audit_auditchain SET seq = seq - 1 WHERE key = %s",
    "UPDATE audit_auditchain SET key = key + 1000 WHERE key = %s",
    "UPDATE audit_auditchain SET last_hash = repeat('a', 64) WHERE key = %s",
    # the hash of an event, but not of the one at the head's place
    "UPDATE audit_auditchain SET last_hash = (SELECT hash FROM audit_auditevent WHERE seq = 1 AND "
    "organization_id = key) WHERE key = %s",
])
def test_postgres_trigger_keeps_the_chain_head_moving_forward(org_a, verify_audit, sql):
    from apps.audit.models import AuditChain

    _trail(org_a, 3)
    with pytest.raises(DatabaseError, match="audit chain head"), transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql, [org_a.pk])
    assert AuditChain.objects.filter(key=org_a.pk).values_list("seq", flat=True).get() == 3
    _trail(org_a, 1)  # appending still moves it
    assert verify_audit()[0] == 0
