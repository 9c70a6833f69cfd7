"""Each event keeps the time of the clock of the process that recorded it, and the date search
finds it by that time, whatever the clocks of the hosts that recorded the events before it (two
hosts a second apart, an NTP step back, a host a day fast). Before, an event's time was never
before the previous event's (the date search took a window of time for a window of seq): one
event from a host a day ahead dated every later event of the chain a day ahead (found by review)."""

from __future__ import annotations

import types
from datetime import date, datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from apps.audit import actions, chain
from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters, event_search
from apps.audit.services import record

pytestmark = pytest.mark.django_db

D = date(2026, 3, 10)
NEXT = date(2026, 3, 11)


def _at(day, h, m, s, us):
    return timezone.make_aware(datetime(day.year, day.month, day.day, h, m, s, us))


def _recorded_at(org, admin, times):
    """One event per time, each taken as the clock of the process recording it."""
    clock = iter(times)
    fake = types.SimpleNamespace(now=lambda: next(clock), is_naive=timezone.is_naive, make_aware=timezone.make_aware)
    with mock.patch.object(chain, "timezone", fake):
        return [record(action=actions.CASE_VIEWED, actor=admin, organization=org) for _ in times]


def _found(org, **dates) -> set[int]:
    return {e.pk for e in event_search(organization=org, filters=AuditFilters(**dates))}


def test_an_event_from_a_slower_clock_keeps_its_time_and_is_found_by_its_day(org_a, admin_a, verify_audit):
    e0, e1, e2, e3 = _recorded_at(org_a, admin_a, [
        _at(D, 12, 0, 0, 0),                 # web host A
        _at(D, 23, 59, 59, 500000),          # web host A
        _at(NEXT, 0, 0, 0, 300000),          # web host A, 0.8 s later
        _at(D, 23, 59, 59, 400000),          # worker host B, its clock 1.1 s behind, appended after
    ])
    assert AuditEvent.objects.get(pk=e3.pk).created_at == _at(D, 23, 59, 59, 400000)   # its own time
    assert _found(org_a, date_from=D, date_to=D) == {e0.pk, e1.pk, e3.pk}
    assert _found(org_a, date_to=D) == {e0.pk, e1.pk, e3.pk}
    assert _found(org_a, date_from=D) == {e0.pk, e1.pk, e2.pk, e3.pk}
    assert _found(org_a, date_from=NEXT) == _found(org_a, date_from=NEXT, date_to=NEXT) == {e2.pk}
    code, out = verify_audit()
    assert code == 0, out   # the time the hash covers is the one kept


def test_one_fast_clock_does_not_misdate_the_events_after_it(org_a, admin_a, verify_audit):
    """A host a day ahead records one event: it carries its (wrong) day and is found by it; the
    events after it, from good clocks, keep their own time and are found by today's date."""
    now = timezone.now()
    ahead = _recorded_at(org_a, admin_a, [now + timedelta(days=1)])[0]
    later = [record(action=actions.CASE_VIEWED, actor=admin_a, organization=org_a) for _ in range(3)]
    assert all(now <= AuditEvent.objects.get(pk=e.pk).created_at < now + timedelta(hours=1) for e in later)
    today, tomorrow = timezone.localdate(now), timezone.localdate(now + timedelta(days=1))
    assert {e.pk for e in later} <= _found(org_a, date_from=today, date_to=today)
    assert ahead.pk not in _found(org_a, date_from=today, date_to=today)
    assert ahead.pk in _found(org_a, date_from=tomorrow, date_to=tomorrow)
    assert not {e.pk for e in later} & _found(org_a, date_from=tomorrow, date_to=tomorrow)
    code, out = verify_audit()
    assert code == 0, out


def test_a_chain_stored_with_times_made_to_follow_still_verifies_and_is_searched(org_a, admin_a, verify_audit):
    """Events stored before this change took the previous event's time when their clock was
    behind (several events sharing a time across midnight): the hash covers the time stored, so
    the chain still verifies, and they are found by the day they carry, next to events that
    went back in time since."""
    events = _recorded_at(org_a, admin_a, [
        _at(D, 23, 59, 59, 0),
        _at(NEXT, 0, 0, 30, 0),              # then the clock steps back a minute: stored as before,
        _at(NEXT, 0, 0, 30, 0),              # the two events after it took its time
        _at(NEXT, 0, 0, 30, 0),
        _at(D, 23, 59, 50, 0),               # recorded since: its own time, before the previous one's
        _at(NEXT, 0, 0, 31, 0),
    ])
    assert _found(org_a, date_from=NEXT) == {e.pk for e in events[1:4]} | {events[5].pk}
    assert _found(org_a, date_from=D, date_to=D) == {events[0].pk, events[4].pk}
    code, out = verify_audit()
    assert code == 0, out
