"""Tumor boards and cases changed at the same moment by two people (two connections)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.cases import services
from apps.cases.models import Case, CaseStatus
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from tests.factories import CaseFactory, member
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]


def test_a_case_closed_while_its_board_starts_keeps_no_board_access(org_a, monkeypatch):
    """A coordinator closes a case just as the host starts the board it is on. The start read
    the case open; without a common lock the close revoked the grants it could see (none yet) and
    the board's grants on the closed case stayed unrevoked: reopening the case gave the
    participants access again, which closing promises never to do. Now the close waits for the
    start and revokes its grants too."""
    host = member(org_a, Role.RADIOLOGIST)
    coordinator = member(org_a, Role.COORDINATOR)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a)
    board = services.board_create(organization=org_a, by=host, host=host, title="Board",
                                  meeting_at=timezone.now() + timedelta(hours=1), review_days=7, cases=[case],
                                  participants=[consultant])
    real_grant_create = services.grant_create
    failures: list[BaseException] = []
    closing = []

    def grant_create(**kwargs):
        if not closing:  # the start has read its cases and not committed: the case is closed now
            closing.append(in_thread_until_blocked(failures, services.case_close,
                                                   case=Case.objects.get(pk=case.pk), by=coordinator))
        return real_grant_create(**kwargs)

    monkeypatch.setattr(services, "grant_create", grant_create)
    services.board_start(board=board, by=host)
    closing[0].join(timeout=30)

    assert not failures
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED
    assert not Grant.objects.filter(case=case, revoked_at__isnull=True).exists()
    services.case_reopen(case=case, by=coordinator)
    assert not policy.can(consultant, Action.VIEW_CASE, case)
