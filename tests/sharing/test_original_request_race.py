"""Two submits of the request for the original DICOM at once (a double tap, two tabs), two
connections: the second used to find no pending request (the first's was not committed yet) and
make a second one, so the deciders were asked twice. The grant's row is locked before the check:
the second waits for the first, then sees its request and is refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.sharing import services
from apps.sharing.models import OriginalRequest
from tests.factories import GrantFactory
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]

REASON = "Need the thin-slice series to measure."


def test_two_requests_at_once_make_one(case, owner, consultant, monkeypatch):
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         permissions=["view", "download_preview"], renditions=["preview"])
    real_record, failures, threads, started = services.record, [], [], []

    def record(**kwargs):  # the first request is written, not committed: the second one starts now
        if kwargs.get("action") == "original_request.created" and not started:
            started.append(True)
            threads.append(in_thread_until_blocked(failures, services.original_request_create, grant=grant,
                                                   by=consultant, reason=REASON))
        return real_record(**kwargs)

    monkeypatch.setattr(services, "record", record)
    services.original_request_create(grant=grant, by=consultant, reason=REASON)
    threads[0].join(timeout=30)
    assert OriginalRequest.objects.count() == 1
    assert len(failures) == 1 and isinstance(failures[0], ValidationError)
    assert "already asked" in str(failures[0])
