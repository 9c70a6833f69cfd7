"""An organization's note that its trail began (``Organization.audit_started_at``) is what tells
``verify_audit`` that its chain existed once the audit tables are emptied; clearing it (or deleting
the organization's row, which nothing PROTECTs once its events are gone) made a wiped trail
verify again. On PostgreSQL a trigger (audit migration 0009) refuses both unless the session says
it is maintenance (``lightbox.audit_maintenance``: an operator's switch, not a barrier against the
application's own database role; anchors kept off the host are the proof). An instance read before
the first event, saved after it, no longer writes the note back to NULL. The organization's first
event no longer deadlocks with a writer that locks the organization's row and then records."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.organizations.models import Organization
from tests.audit.test_verify import ON_POSTGRES
from tests.factories import OrganizationFactory
from tests.threads import in_thread, in_thread_until_blocked

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(not ON_POSTGRES, reason="the refusing trigger exists on PostgreSQL only")


def _ordinary(sql: str, params=()) -> None:
    """``sql`` in a session that is not maintenance (the test connections are: portal/settings/test.py)."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("SET LOCAL lightbox.audit_maintenance = off")
        cur.execute(sql, params)


@postgres_only
@pytest.mark.parametrize("value", ["NULL", "now()"])
def test_postgres_refuses_changing_when_the_trail_began(org_a, verify_audit, value):
    record(action="case.viewed", organization=org_a)
    started = Organization.objects.get(pk=org_a.pk).audit_started_at
    with pytest.raises(DatabaseError, match="never changed"):
        _ordinary(f"UPDATE organizations_organization SET audit_started_at = {value} WHERE id = %s",
                  [org_a.pk])
    assert Organization.objects.get(pk=org_a.pk).audit_started_at == started
    _ordinary("UPDATE organizations_organization SET name = 'Alpha again' WHERE id = %s", [org_a.pk])  # the rest
    _ordinary("UPDATE organizations_organization SET audit_started_at = audit_started_at WHERE id = %s",
              [org_a.pk])  # unchanged
    assert verify_audit()[0] == 0


@postgres_only
def test_a_wipe_that_also_clears_the_note_is_refused_without_maintenance(org_a, verify_audit):
    """The reviewer's wipe, the TRUNCATE under the maintenance switch, the note cleared after it
    in an ordinary session: refused, so verify_audit still reports the chain gone."""
    record(action="case.viewed", organization=org_a)
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("SET LOCAL lightbox.audit_maintenance = on")
        cur.execute("TRUNCATE audit_auditevent, audit_auditchain")
        cur.execute("SET LOCAL lightbox.audit_maintenance = off")
        cur.execute("UPDATE organizations_organization SET audit_started_at = NULL")
    assert AuditEvent.objects.filter(organization=org_a).count() == 1  # rolled back with it
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("TRUNCATE audit_auditevent, audit_auditchain")  # maintenance (the test connections')
        cur.execute("SET CONSTRAINTS ALL DEFERRED")
    with pytest.raises(DatabaseError, match="never changed"):
        _ordinary("UPDATE organizations_organization SET audit_started_at = NULL")
    with pytest.raises(DatabaseError, match="never deleted"):
        _ordinary("DELETE FROM organizations_organization WHERE id = %s", [org_a.pk])  # nothing PROTECTs it now
    code, message = verify_audit()
    assert code == 1 and "chain 'alpha'" in message


@postgres_only
def test_an_organization_whose_trail_never_began_may_be_deleted_and_maintenance_may_do_either(org_a, org_b):
    _ordinary("DELETE FROM organizations_organization WHERE id = %s", [org_b.pk])
    assert not Organization.objects.filter(pk=org_b.pk).exists()
    _ordinary("UPDATE organizations_organization SET audit_started_at = now() WHERE id = %s", [org_a.pk])  # first
    with transaction.atomic(), connection.cursor() as cur:  # the operator's switch, on purpose
        cur.execute("SET LOCAL lightbox.audit_maintenance = on")
        cur.execute("UPDATE organizations_organization SET audit_started_at = NULL WHERE id = %s", [org_a.pk])
    assert Organization.objects.get(pk=org_a.pk).audit_started_at is None


def test_saving_an_organization_read_before_its_first_event_keeps_the_note(org_a):
    stale = Organization.objects.get(pk=org_a.pk)
    assert stale.audit_started_at is None
    record(action="case.viewed", organization=org_a)
    started = Organization.objects.get(pk=org_a.pk).audit_started_at
    assert started is not None
    stale.name = "Alpha Clinic"
    stale.save()  # the admin's, a form's: every field written
    org = Organization.objects.get(pk=org_a.pk)
    assert (org.name, org.audit_started_at) == ("Alpha Clinic", started)


@pytest.mark.skipif(not ON_POSTGRES, reason="two connections at once: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_the_first_event_and_a_writer_holding_the_organization_do_not_deadlock(verify_audit):
    """A writer that locks the organization's row then records (an invitation sent:
    ``_invitation_refuse_pending``), while the organization's first event is being recorded: the
    first event made and locked the chain's head, then waited for the row; the writer then waited
    for the head (a deadlock: PostgreSQL refused one of them). The row is now taken first."""
    org = OrganizationFactory(slug="first")
    failures: list[BaseException] = []
    locked, go = threading.Event(), threading.Event()

    def holder():
        with transaction.atomic():
            Organization.objects.select_for_update(no_key=True).filter(pk=org.pk).values_list("pk").first()
            locked.set()
            go.wait(10)
            record(action="invitation.sent", organization=org)

    first = in_thread(failures, holder)
    assert locked.wait(10)
    other = in_thread_until_blocked(failures, record, action="case.viewed", organization=org)
    go.set()
    first.join(20)
    other.join(20)
    assert not failures, failures
    events = list(AuditEvent.objects.filter(organization=org).order_by("seq"))
    assert [e.seq for e in events] == [1, 2]
    assert Organization.objects.get(pk=org.pk).audit_started_at == events[0].created_at
    assert verify_audit()[0] == 0
