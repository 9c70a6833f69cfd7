"""``manage.py audit_global``: the global chain (events of no organization) had no reader but
``verify_audit``, so a sign-in tried on an unknown address, or by someone no organization has
lately had as a member, was seen by no one. The command prints it, oldest first, with the
organization CSV export's columns and formula guard (the export's own row function), as CSV or
JSON, and nothing of any organization's chain; the reading is recorded in the global chain."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.audit.views import CSV_COLUMNS
from apps.organizations.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate().isoformat()


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_global", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def chains(org_a):
    """A failed sign-in on an unknown address (global), a system event whose label a spreadsheet
    would run as a formula (global), and an Alpha member's sign-in (Alpha's chain)."""
    Client().post(reverse("account_login"), {"login": "nobody@nowhere.example", "password": "wrong-password-1"})
    record(action=actions.KEYS_ROTATED, actor_label="system=HYPERLINK(\"x\")", details={"key_id": "k2"})
    record(action=actions.KEYS_ROTATED, actor_label="system", details={"key_id": "=1+1"})
    insider = member(org_a, Role.CLINICIAN, email="insider@alpha.example")
    record(action=actions.AUTH_SIGNED_IN, actor=insider, organization=org_a)
    return AuditEvent.objects.filter(organization__isnull=True).order_by("seq")


def test_csv_prints_the_global_chain_and_nothing_of_another(org_a, chains):
    expected = list(chains.values_list("pk", flat=True))
    rows = list(csv.reader(io.StringIO(_run("--since", TODAY))))
    assert tuple(rows[0]) == CSV_COLUMNS
    printed = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    # the global events, oldest first, then the reading itself (recorded before it read)
    assert [int(r["id"]) for r in printed][:-1] == expected
    assert [r["action"] for r in printed] == [actions.AUTH_SIGN_IN_FAILED, actions.KEYS_ROTATED,
                                              actions.KEYS_ROTATED, actions.AUDIT_EXPORTED]
    assert all(r["organization"] == "" for r in printed)
    body = "\n".join(",".join(r) for r in rows)
    assert "insider@alpha.example" not in body
    assert not AuditEvent.objects.filter(organization=org_a, pk__in=[int(r["id"]) for r in printed]).exists()


def test_the_export_formula_guard_applies(chains):
    rows = list(csv.DictReader(io.StringIO(_run("--since", TODAY))))
    # a details cell starting with "{" is not guarded, a label starting with "s" neither: only
    # cells a spreadsheet would run: the same guard as the organization export
    assert rows[1]["actor"] == 'system=HYPERLINK("x")'
    event = AuditEvent.objects.create(action=actions.KEYS_ROTATED, actor_label="=cmd|' /C calc'!A0")
    rows = list(csv.DictReader(io.StringIO(_run("--since", TODAY))))
    (row,) = [r for r in rows if r["id"] == str(event.pk)]
    assert row["actor"] == "'=cmd|' /C calc'!A0"


def test_json_gives_the_same_cells_keyed_by_the_columns(chains):
    csv_rows = list(csv.DictReader(io.StringIO(_run("--since", TODAY))))
    events = json.loads(_run("--since", TODAY, "--format", "json"))
    assert [tuple(e) for e in events] == [CSV_COLUMNS] * len(events)
    # the same events (the JSON reading adds its own record at the end)
    assert [e for e in events if e["action"] != actions.AUDIT_EXPORTED] == \
        [r for r in csv_rows if r["action"] != actions.AUDIT_EXPORTED]
    assert events[-1]["action"] == actions.AUDIT_EXPORTED


def test_the_reading_is_recorded_in_the_global_chain(chains):
    _run("--since", TODAY, "--format", "json")
    event = AuditEvent.objects.filter(action=actions.AUDIT_EXPORTED).get()
    assert event.organization_id is None and event.actor_type == "system"
    assert event.details == {"format": "json", "chain": "global", "since": TODAY, "until": None}


def test_dates_bound_what_is_printed(monkeypatch):
    from apps.audit import chain

    stamp = timezone.now() - timedelta(days=10)
    with monkeypatch.context() as patched:  # the chain takes the time under its lock
        patched.setattr(chain.timezone, "now", lambda: stamp)
        old = record(action=actions.KEYS_ROTATED, actor_label="system")
    new = record(action=actions.KEYS_ROTATED, actor_label="system")
    earlier = (timezone.localdate() - timedelta(days=10)).isoformat()
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    today = [r["id"] for r in csv.DictReader(io.StringIO(_run("--since", TODAY)))]
    assert str(new.pk) in today and str(old.pk) not in today
    only_old = [r["id"] for r in csv.DictReader(io.StringIO(_run("--since", earlier, "--until", yesterday)))]
    assert only_old == [str(old.pk)]


@pytest.mark.parametrize(("args", "said"), [(("--since", "yesterday"), "not a date (YYYY-MM-DD)"),
                                            (("--since", TODAY, "--until", "2000-01-01"), "--until is before --since")])
def test_bad_dates_are_refused(args, said):
    with pytest.raises(CommandError, match=re.escape(said)):
        _run(*args)
    assert not AuditEvent.objects.filter(action=actions.AUDIT_EXPORTED).exists()
