"""Two starts of the same de-identified export at the same moment (a double click, two tabs),
on two database connections: one export, one ``deid.export_started``."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.deid import services
from apps.deid.models import DeidExport
from tests.factories import StudyFactory
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]


def test_two_starts_at_once_make_one_export(org_a, clinician_a, monkeypatch):
    """The first start has inserted its export and not committed when the second arrives. Looked
    for without a lock, the second could not see the uncommitted export and made its own (two
    exports of the same thing, two ``deid.export_started``). Now the second waits on the study's
    row lock, then finds the first's export and returns it, recording nothing."""
    study = StudyFactory(organization=org_a)
    real_record = services.record
    failures: list[BaseException] = []
    second: list = []
    spawned = threading.Event()
    returned: list[DeidExport] = []

    def start():
        returned.append(services.deid_export_start(study=study, by=clinician_a, pseudonym="PSEUDO-RACE", enqueue=False))

    def record(**kwargs):
        if not spawned.is_set():  # the first start's export is inserted, its transaction open: the second click
            spawned.set()
            second.append(in_thread_until_blocked(failures, start))
        return real_record(**kwargs)

    monkeypatch.setattr(services, "record", record)
    first = services.deid_export_start(study=study, by=clinician_a, pseudonym="PSEUDO-RACE", enqueue=False)
    second[0].join(timeout=30)

    assert not failures
    assert [e.pk for e in returned] == [first.pk]
    assert list(DeidExport.objects.values_list("pk", flat=True)) == [first.pk]
    assert AuditEvent.objects.filter(action=A.DEID_EXPORT_STARTED).count() == 1
