"""The whole trail wiped: ``TRUNCATE audit_auditevent, audit_auditchain`` fired none of the
row-level triggers (0004, 0007), and ``verify_audit`` then said "Audit trail intact: 0 events in 0
chains verified". On PostgreSQL a statement-level trigger refuses TRUNCATE of either table unless
the session says it is maintenance on purpose (``lightbox.audit_maintenance``, which the test
settings set for pytest-django's flushes); on any database ``verify_audit`` exits 1 for an
organization whose trail began (``Organization.audit_started_at``) and whose chain is gone."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditChain, AuditEvent
from apps.audit.services import record
from apps.organizations.models import Organization
from tests.audit.test_verify import HEAD_TABLE, HEAD_TRIGGER, ON_POSTGRES, trigger_disabled
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def _trail(org, n=3):
    return [record(action="case.viewed", organization=org, details={"i": i}) for i in range(n)]


def _wipe() -> None:
    """Both audit tables emptied, as the reviewer did (PostgreSQL: TRUNCATE, which these test
    connections may; SQLite: plain DELETEs, which nothing in the database refuses)."""
    with connection.cursor() as cur:
        if ON_POSTGRES:
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign-key checks under TRUNCATE
            cur.execute("TRUNCATE audit_auditevent, audit_auditchain")
            cur.execute("SET CONSTRAINTS ALL DEFERRED")
        else:
            cur.execute("DELETE FROM audit_auditevent")
            cur.execute("DELETE FROM audit_auditchain")
    assert not AuditEvent.objects.exists() and not AuditChain.objects.exists()


@pytest.mark.skipif(not ON_POSTGRES, reason="the refusing trigger exists on PostgreSQL only")
@pytest.mark.parametrize("sql", ["TRUNCATE audit_auditevent, audit_auditchain", "TRUNCATE audit_auditevent",
                                 "TRUNCATE audit_auditchain",
                                 "TRUNCATE organizations_organization CASCADE"])  # reaches them by cascade
def test_postgres_refuses_an_ordinary_truncate(org_a, verify_audit, sql):
    _trail(org_a)
    with pytest.raises(DatabaseError, match="never truncated"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("SET LOCAL lightbox.audit_maintenance = off")  # an ordinary session's
        cur.execute(sql)
    assert AuditEvent.objects.filter(organization=org_a).count() == 3
    assert verify_audit()[0] == 0


@pytest.mark.skipif(not ON_POSTGRES, reason="the refusing trigger exists on PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_session_that_never_heard_of_the_setting_is_refused(verify_audit):
    """What a console or another client is: a connection of its own, the setting not set at all
    (the test connections have it on: portal/settings/test.py)."""
    import psycopg

    org = OrganizationFactory(slug="wiped")
    _trail(org)
    params = {k: v for k, v in connection.get_connection_params().items()
              if k in ("dbname", "user", "password", "host", "port")}
    with psycopg.connect(**params, autocommit=True) as other, other.cursor() as cur:
        cur.execute("SET lock_timeout = '5s'")
        cur.execute("SELECT current_setting('lightbox.audit_maintenance', true)")
        assert cur.fetchone()[0] in (None, "")
        with pytest.raises(psycopg.Error, match="never truncated"):
            cur.execute("TRUNCATE audit_auditevent, audit_auditchain")
    assert AuditEvent.objects.filter(organization=org).count() == 3
    assert verify_audit()[0] == 0


def test_a_wiped_trail_is_reported_naming_each_organization(org_a, org_b, verify_audit):
    _trail(org_a)
    _trail(org_b, 2)
    record(action="auth.signed_in")
    assert verify_audit()[0] == 0
    _wipe()
    code, message = verify_audit()
    assert code == 1, message
    assert "chain 'alpha'" in message and "every event and the chain's head are missing" in message
    for slug in ("alpha", "beta"):
        code, message = verify_audit("--org", slug)
        assert code == 1 and f"chain '{slug}'" in message and "emptied" in message


def test_a_chain_whose_events_are_all_gone_or_whose_head_is_gone_is_reported(org_a, verify_audit):
    _trail(org_a)
    with trigger_disabled(HEAD_TABLE, HEAD_TRIGGER):
        AuditChain.objects.filter(key=org_a.pk).delete()
    code, message = verify_audit("--org", org_a.slug)
    assert code == 1 and "the chain's head is missing" in message
    _wipe()
    AuditChain.objects.create(key=org_a.pk, seq=0)  # a head put back with nothing in it
    code, message = verify_audit("--org", org_a.slug)
    assert code == 1 and "every event is missing" in message


def test_the_organization_notes_when_its_trail_began_once(org_a):
    assert Organization.objects.get(pk=org_a.pk).audit_started_at is None
    first = _trail(org_a, 1)[0]
    started = Organization.objects.get(pk=org_a.pk).audit_started_at
    assert started == AuditEvent.objects.get(pk=first.pk).created_at
    _trail(org_a, 2)
    assert Organization.objects.get(pk=org_a.pk).audit_started_at == started
    record(action="auth.signed_in")  # the global chain notes nothing on any organization
    assert Organization.objects.get(pk=org_a.pk).audit_started_at == started


def test_a_fresh_install_and_organizations_with_no_event_verify(verify_audit):
    code, out = verify_audit()
    assert code == 0 and "0 events in 0 chains" in out
    OrganizationFactory(slug="quiet")  # no event yet: its chain has not begun
    code, out = verify_audit()
    assert code == 0 and "0 events in 0 chains" in out
    assert verify_audit("--org", "quiet")[0] == 0


def test_the_migration_notes_the_first_event_of_organizations_with_events(org_a, org_b):
    migration = importlib.import_module("apps.organizations.migrations.0004_organization_audit_started_at")
    first = _trail(org_a)[0]
    Organization.objects.update(audit_started_at=None)  # as before the migration
    migration.backfill(django_apps, None)
    assert Organization.objects.get(pk=org_a.pk).audit_started_at == AuditEvent.objects.get(pk=first.pk).created_at
    assert Organization.objects.get(pk=org_b.pk).audit_started_at is None  # no event: nothing to note
