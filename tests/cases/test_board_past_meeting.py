"""A tumor board is not scheduled for a meeting time in the past. QA created one for
2020-01-01 10:00 and it was listed as "Scheduled"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.cases import services
from apps.cases.models import BoardSession
from apps.organizations.models import Role
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

PAST = "The meeting time is in the past"


def _create(host, case, meeting_at):
    return services.board_create(organization=host.memberships.get().organization, by=host, host=host,
                                 title="Thoracic board", meeting_at=meeting_at, review_days=7, cases=[case],
                                 participants=[])


def test_the_board_form_refuses_a_meeting_time_in_the_past(org_a, client_as):
    host = member(org_a, Role.RADIOLOGIST)
    case = CaseFactory(organization=org_a)
    response = client_as(host).post(reverse("cases:board_create"), {
        "title": "Thoracic board", "meeting_at": "2020-01-01T10:00", "review_days": "7", "host": host.pk,
        "cases": [case.pk]})
    assert response.status_code == 400
    assert PAST in " ".join(response.context["form"].errors["meeting_at"])
    assert not BoardSession.objects.exists()


def test_board_create_refuses_a_past_meeting_and_takes_one_ahead(org_a):
    host = member(org_a, Role.RADIOLOGIST)
    case = CaseFactory(organization=org_a)
    with pytest.raises(ValidationError, match=PAST):
        _create(host, case, timezone.now() - timedelta(days=1))
    assert not BoardSession.objects.exists()
    assert _create(host, case, timezone.now() + timedelta(hours=1)).pk


def test_a_board_whose_meeting_time_passed_keeps_it_when_edited_but_takes_no_other_past_time(org_a):
    host = member(org_a, Role.RADIOLOGIST)
    case = CaseFactory(organization=org_a)
    board = _create(host, case, timezone.now() + timedelta(hours=1))
    passed = timezone.now() - timedelta(days=1)
    BoardSession.objects.filter(pk=board.pk).update(meeting_at=passed)
    board.refresh_from_db()
    services.board_update(board=board, by=host, host=host, title="Renamed", meeting_at=passed, review_days=7,
                          cases=[case], participants=[])
    with pytest.raises(ValidationError, match=PAST):
        services.board_update(board=board, by=host, host=host, title="Renamed",
                              meeting_at=passed - timedelta(days=1), review_days=7, cases=[case], participants=[])
    board.refresh_from_db()
    assert board.title == "Renamed" and board.meeting_at == passed
