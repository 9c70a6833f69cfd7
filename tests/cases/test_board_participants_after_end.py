"""Who took part in a tumor board, once its meeting ended: its outside participants (consultants
of other hospitals, members here as external consultants) still find the board (17a0693), but its
page no longer lists the other participants with their e-mail addresses, which it showed each of
them for as long as they stayed members (found by review: before 17a0693 the page was a 404 after
the end). Staff of the organization see the list as before; during the meeting everyone on it
does. Decided by ``policy.sees_board_participants``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.cases import services
from apps.organizations.models import Role
from apps.sharing import policy
from tests.cases.test_board_after_end import _client, _page, _start_and_end
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

PEOPLE = 'data-testid="board-participants"'
OTHER = "dr.private@otherclinic.example"


@pytest.fixture
def board_of(org_a):
    host = member(org_a, Role.RADIOLOGIST, email="host@alpha.example", full_name="Hana Host")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="ext@stmarys.example")
    other = member(org_a, Role.EXTERNAL_CONSULTANT, email=OTHER, full_name="Olga Other")
    coordinator = member(org_a, Role.COORDINATOR, email="coord@alpha.example")
    clinician = member(org_a, Role.CLINICIAN, email="clin@alpha.example")
    board = services.board_create(organization=org_a, by=host, host=host, title="Thoracic board",
                                  meeting_at=timezone.now() + timedelta(hours=2), review_days=5,
                                  cases=[CaseFactory(organization=org_a)],
                                  participants=[consultant, other, coordinator])
    return board, host, consultant, coordinator, clinician


def test_an_outside_participant_no_longer_sees_who_took_part_once_it_ended(board_of, org_a, client_as,
                                                                           django_capture_on_commit_callbacks):
    board, host, consultant, _coordinator, _clinician = board_of
    services.board_start(board=board, by=host)
    live = _client(client_as, consultant, org_a).get(_page(board)).content.decode()
    assert OTHER in live and "Olga Other" in live  # during the meeting, as before
    with django_capture_on_commit_callbacks(execute=True):
        services.board_end(board=board, by=host)
    response = _client(client_as, consultant, org_a).get(_page(board))
    assert response.status_code == 200
    text = response.content.decode()
    assert PEOPLE not in text and OTHER not in text and "Olga Other" not in text
    assert "coord@alpha.example" not in text
    assert "Hana Host" in text  # the host, whom the page says to ask
    assert not policy.sees_board_participants(consultant, board)


def test_staff_still_see_who_took_part_once_it_ended(board_of, org_a, client_as,
                                                     django_capture_on_commit_callbacks):
    board, host, _consultant, coordinator, clinician = board_of
    _start_and_end(board, host, django_capture_on_commit_callbacks)
    for user in (host, coordinator, clinician):  # a participant or not
        text = _client(client_as, user, org_a).get(_page(board)).content.decode()
        assert OTHER in text and "ext@stmarys.example" in text and "Olga Other" in text, user.email
        assert policy.sees_board_participants(user, board)
