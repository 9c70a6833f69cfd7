"""Shared with me shows when a share ended, not its original expiry, once it was revoked before
that expiry (found by QA: a tumor board's grants read "Ended with the meeting" beside an
Expires date still days ahead). The cell gives the time the meeting's end (or a revocation by
hand) ended it; a share that ran out, or is live, keeps its expiry."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.cases import services as case_services
from apps.organizations.models import Role
from apps.sharing.services import grant_create
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db


def _expiry_cells(client) -> list[str]:
    html = client.get(reverse("sharing:shared_with_me")).content.decode()
    # each cell under its column's name (data-label: a card a share on a phone)
    return re.findall(r'<td[^>]*data-testid="received-expiry"[^>]*>(.*?)</td>', html, flags=re.S)


def _iso(value) -> str:
    return timezone.localtime(value).isoformat()


def test_an_ended_meetings_share_shows_when_it_ended_not_its_future_expiry(org_a, client_as):
    host = member(org_a, Role.RADIOLOGIST, email="host@alpha.example")
    participant = member(org_a, Role.EXTERNAL_CONSULTANT, email="participant@alpha.example")
    case = CaseFactory(organization=org_a, title="Board case")
    board = case_services.board_create(organization=org_a, by=host, host=host, title="Thoracic board",
                                       meeting_at=timezone.now() + timedelta(hours=2), review_days=6,
                                       cases=[case], participants=[participant])
    case_services.board_start(board=board, by=host)
    case_services.board_end(board=board, by=host)
    grant = board.grants.get()
    assert grant.expires_at > timezone.now() + timedelta(days=5)  # its expiry: days ahead
    [cell] = _expiry_cells(client_as(participant))
    assert 'data-testid="received-ended"' in cell
    assert f'datetime="{_iso(grant.revoked_at)}"' in cell
    assert _iso(grant.expires_at) not in cell
    assert "Ended " in cell


def test_a_live_share_shows_its_expiry(org_a, clinician_a, client_as):
    reader = member(org_a, Role.EXTERNAL_CONSULTANT, email="reader@alpha.example")
    grant = grant_create(case=CaseFactory(organization=org_a), grantee=reader, permissions=["view"], by=clinician_a,
                         expires_at=timezone.now() + timedelta(days=2))
    [cell] = _expiry_cells(client_as(reader))
    assert f'datetime="{_iso(grant.expires_at)}"' in cell and "Ended" not in cell
