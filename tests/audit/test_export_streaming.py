"""The audit exports are streamed under ASGI (production runs uvicorn): an async body read in
batches (keyset pages on seq), never a sync generator that Django would gather whole first."""

from __future__ import annotations

import csv
import io
import json
import warnings

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.audit import actions, selectors
from apps.audit.models import AuditEvent
from apps.audit.services import record

pytestmark = pytest.mark.django_db

BATCH = 10
N = 45


@pytest.fixture
def read(monkeypatch):
    """How many events the export has read so far."""
    count = [0]
    real = selectors.events_in_order

    def counting(*args, **kwargs):
        for event in real(*args, **kwargs):
            count[0] += 1
            yield event

    monkeypatch.setattr(selectors, "events_in_order", counting)
    return count


@pytest.fixture
def trail(org_a, admin_a, monkeypatch):
    monkeypatch.setattr(selectors, "EXPORT_BATCH", BATCH)
    return [record(action=actions.CASE_VIEWED, actor=admin_a, organization=org_a) for _ in range(N)]


def _trail_ids(org_id: int, *, before: int | None = None) -> list[int]:
    events = AuditEvent.objects.filter(organization_id=org_id).order_by("seq")
    if before is not None:
        events = events.filter(seq__lt=before)
    return list(events.values_list("pk", flat=True))


def _ids(name: str, body: str) -> list[int]:
    if name == "audit:export_csv":
        return [int(r["id"]) for r in csv.DictReader(io.StringIO(body))]
    return [int(e["resource"]["id"].rsplit("-", 1)[1]) for e in json.loads(body)["entry"]]


@pytest.mark.parametrize("name", ["audit:export_csv", "audit:export_fhir"])
def test_export_under_asgi_is_sent_as_it_is_read(trail, read, admin_a, name):
    client = AsyncClient()
    client.force_login(admin_a)

    async def fetch():
        response = await client.post(reverse(name))
        assert response.status_code == 200
        assert response.is_async  # an async iterator: Django sends it as it comes
        parts = response.streaming_content
        first = await parts.__anext__()
        read_before_first = read[0]
        rest = [part async for part in parts]
        return first, read_before_first, rest

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, read_before_first, rest = async_to_sync(fetch)()
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]
    # the first chunk went out once one batch was read and rendered, not the whole trail
    first = first.decode()
    assert 0 < read_before_first <= BATCH
    assert 0 < first.count(actions.CASE_VIEWED) < BATCH
    body = first + "".join(part.decode() for part in rest)
    # every event, in order: the trail as it was when the export was asked (its own event after)
    exported = AuditEvent.objects.get(action=actions.AUDIT_EXPORTED)
    assert _ids(name, body) == _trail_ids(trail[0].organization_id, before=exported.seq) and read[0] > N
    assert exported.details["rows"] == read[0]


def test_export_reads_keyset_pages_not_a_cursor(trail, admin_a, client_as):
    """Each batch its own query resuming after the last seq read (seq > last ... LIMIT n), the
    same under WSGI."""
    client = client_as(admin_a)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(reverse("audit:export_csv"))
        body = b"".join(response.streaming_content).decode()
    assert not response.is_async
    reads = [q["sql"] for q in queries if '"audit_auditevent"' in q["sql"] and "LIMIT 10" in q["sql"]]
    ids = _ids("audit:export_csv", body)
    exported = AuditEvent.objects.get(action=actions.AUDIT_EXPORTED)
    assert ids == _trail_ids(trail[0].organization_id, before=exported.seq) and len(ids) >= N
    assert len(reads) == len(ids) // BATCH + 1  # pages of 10, the last one short


def test_events_recorded_during_an_export_do_not_keep_it_going(trail, org_a, admin_a):
    qs = selectors.event_search(organization=org_a, filters=selectors.AuditFilters())
    events = selectors.events_in_order(qs, upto=trail[-1].seq, size=BATCH)
    seen = [next(events) for _ in range(5)]
    record(action=actions.CASE_VIEWED, actor=admin_a, organization=org_a)  # arrives mid-export
    seen += list(events)
    assert [e.pk for e in seen] == [e.pk for e in trail]
