"""A decision on a request for the original and the end of its share at once, two connections.
The decision locks the case, then the grant, then the request (the order closing a case takes
them; a revocation takes the grant, then its requests) and decides on the rows as locked: a
revocation that came first is seen (the request was withdrawn with it, nothing approved); a
decision that came first commits, then the revocation or the close ends what is left, the
approved grant too when the case closes. Never a deadlock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from apps.sharing import services
from apps.sharing.models import Grant, GrantSource, OriginalRequest
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]

REASON = "Need the thin-slice series to measure."


@pytest.fixture
def req(case, owner, consultant):
    grant = services.grant_create(case=case, grantee=consultant, by=owner, permissions=["view", "download_preview"],
                                  renditions=["preview"], expires_at=timezone.now() + timedelta(hours=10))
    return services.original_request_create(grant=grant, by=consultant, reason=REASON)


def _start_once(monkeypatch, action: str, threads: list, failures: list, fn, **kwargs) -> None:
    """When the service under test records ``action`` (its rows locked, not committed), start
    ``fn`` on another connection and let it go as far as it can."""
    real_record = services.record

    def record(**kw):
        result = real_record(**kw)
        if kw.get("action") == action and not threads:
            threads.append(in_thread_until_blocked(failures, fn, **kwargs))
        return result

    monkeypatch.setattr(services, "record", record)


def test_an_approval_waiting_on_a_revocation_finds_the_request_withdrawn(req, owner, radiologist, monkeypatch):
    threads, failures = [], []
    _start_once(monkeypatch, "grant.revoked", threads, failures, services.original_request_decide,
                original_request=req, by=radiologist, approve=True, hours=12)
    services.grants_revoke(grants=[req.grant], by=owner, reason="revoked by sharer")
    threads[0].join(timeout=30)
    assert not threads[0].is_alive()
    assert len(failures) == 1 and isinstance(failures[0], ValidationError), failures
    req.refresh_from_db()
    assert req.status == "withdrawn" and req.approved_grant is None
    assert not Grant.objects.filter(source=GrantSource.ORIGINAL_REQUEST).exists()


def test_a_close_waiting_on_an_approval_ends_the_approved_grant_too(req, owner, radiologist, monkeypatch):
    from apps.cases.services import case_close

    threads, failures = [], []
    _start_once(monkeypatch, "grant.created", threads, failures, case_close, case=req.case, by=owner)
    services.original_request_decide(original_request=req, by=radiologist, approve=True, hours=12)
    threads[0].join(timeout=30)
    assert not threads[0].is_alive() and failures == []
    req = OriginalRequest.objects.get(pk=req.pk)
    assert req.status == "approved"
    # closing came second: it revoked the share and the grant the approval made
    assert not Grant.objects.filter(case=req.case, revoked_at__isnull=True).exists()
    assert Grant.objects.get(pk=req.approved_grant_id).revoke_reason == "case_closed"
