"""An event's time never goes before the previous event's in its chain, whatever the clock of
the process that records it (two hosts a second apart, an NTP step back): the date search, which
takes a window of time for a window of seq, then finds every event by the day it carries."""

from __future__ import annotations

import types
from datetime import date, datetime
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


def _found(org, **dates) -> list[int]:
    return sorted(e.pk for e in event_search(organization=org, filters=AuditFilters(**dates)))


def test_an_event_from_a_slower_clock_is_found_by_its_day(org_a, admin_a, verify_audit):
    e0, e1, e2, e3 = _recorded_at(org_a, admin_a, [
        _at(D, 12, 0, 0, 0),                 # web host A
        _at(D, 23, 59, 59, 500000),          # web host A
        _at(NEXT, 0, 0, 0, 300000),          # web host A, 0.8 s later
        _at(D, 23, 59, 59, 400000),          # worker host B, its clock 1.1 s behind, appended after
    ])
    # B's event takes the time of the one before it: the chain's time never goes back
    assert e3.created_at == e2.created_at == _at(NEXT, 0, 0, 0, 300000)
    assert AuditEvent.objects.get(pk=e3.pk).created_at == e2.created_at
    for event in (e0, e1, e2, e3):   # every event is found by the day it carries
        day = timezone.localdate(event.created_at)
        assert event.pk in _found(org_a, date_from=day, date_to=day)
        assert event.pk in _found(org_a, date_from=day) and event.pk in _found(org_a, date_to=day)
    assert {e0.pk, e1.pk} <= set(_found(org_a, date_to=D)) and not {e2.pk, e3.pk} & set(_found(org_a, date_to=D))
    assert {e2.pk, e3.pk} == set(_found(org_a, date_from=NEXT))
    code, out = verify_audit()
    assert code == 0, out   # the time the hash covers is the one kept


def test_events_sharing_a_time_across_midnight_are_all_found(org_a, admin_a):
    """A clock stepped back by a whole minute: several events take the last time before it; a
    window starting at that time finds the first of them as well as the others."""
    events = _recorded_at(org_a, admin_a, [
        _at(D, 23, 59, 59, 0),
        _at(NEXT, 0, 0, 30, 0),              # then the clock steps back a minute
        _at(D, 23, 59, 31, 0),
        _at(D, 23, 59, 45, 0),
        _at(NEXT, 0, 0, 31, 0),
    ])
    assert [e.created_at for e in events[1:4]] == [_at(NEXT, 0, 0, 30, 0)] * 3
    assert set(_found(org_a, date_from=NEXT)) == {e.pk for e in events[1:]}
    assert set(_found(org_a, date_from=D, date_to=D)) == {events[0].pk}
