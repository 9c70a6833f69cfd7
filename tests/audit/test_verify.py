"""Must show 2: changing one event's row with raw SQL makes verify_audit exit 1 naming that event;
on PostgreSQL the database refuses the UPDATE (and DELETE) in the first place."""

from __future__ import annotations

import contextlib

import pytest
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditEvent
from apps.audit.services import record
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

TABLE = AuditEvent._meta.db_table
TRIGGER = "audit_auditevent_append_only"
ON_POSTGRES = connection.vendor == "postgresql"


@contextlib.contextmanager
def trigger_disabled():
    """Tampering as an attacker with table-owner rights would: switch the trigger off (PostgreSQL),
    inside the test's transaction, and on again."""
    if ON_POSTGRES:
        with connection.cursor() as cur:
            # run the deferred foreign-key checks of this transaction now: PostgreSQL refuses to
            # ALTER a table with pending trigger events
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cur.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {TRIGGER}")
    try:
        yield
    finally:
        if ON_POSTGRES:
            with connection.cursor() as cur:
                cur.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {TRIGGER}")
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
    """transaction=True tests end with a TRUNCATE flush: row-level triggers do not fire on it."""
    org = OrganizationFactory(slug="flush")
    record(action="case.viewed", organization=org)
    from django.core.management import call_command

    call_command("flush", "--no-input")
    assert not AuditEvent.objects.exists()
