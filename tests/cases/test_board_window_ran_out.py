"""A tumor board whose review window ran out without its host ending it is ended for everyone:
its participants still find it (their list, its page) marked Ended, with the same words as a
board ended by hand, and the access it gave them over (its grants expired with the window).
Before, it stayed "Live" to staff while it was a 404 to its participants, as if it had never
been: the policy saw a live board only through a live grant, and an ended one only once ended
by hand (``BoardSession.has_ended``, ``board_ended``, ``policy.boards_seen_as_participant``).

Actors: the host (a radiologist), an outside consultant and a coordinator who took part, a
clinician of the organization who did not, and another organization's clinician."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.cases import services
from apps.cases.models import BoardSession, BoardState, board_ended
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from tests.factories import CaseFactory, InstanceFactory, SeriesFactory, StudyFactory, member, working_in

pytestmark = pytest.mark.django_db

TITLE = "Breast board of Alpha"
CASE_TITLE = "Right breast mass work-up"
YOURS_ENDED = "This meeting has ended, and the access it gave you to its cases and their images ended with it."
THEIRS_ENDED = "This meeting has ended, and the access it gave its participants to its cases ended with it."
STATE_ENDED = 'data-testid="board-state">Ended<'


@pytest.fixture
def world(org_a):
    host = member(org_a, Role.RADIOLOGIST, email="host@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="ext@stmarys.example")
    coordinator = member(org_a, Role.COORDINATOR, email="coord@alpha.example")
    case = CaseFactory(organization=org_a, title=CASE_TITLE)
    study = StudyFactory(organization=org_a, case=case)
    InstanceFactory.create_batch(2, organization=org_a, series=SeriesFactory(organization=org_a, study=study))
    board = services.board_create(organization=org_a, by=host, host=host, title=TITLE,
                                  meeting_at=timezone.now() + timedelta(hours=2), review_days=5, cases=[case],
                                  participants=[consultant, coordinator])
    services.board_start(board=board, by=host)
    return board, host, consultant, coordinator, case, study


def _window_runs_out(board, *, by: timedelta = timedelta(hours=1)) -> None:
    """As if the meeting had started its review window (and ``by``) ago: its grants, made to
    expire as the window ends, expired then."""
    shift = board.review_window + by
    started = timezone.now() - shift
    BoardSession.objects.filter(pk=board.pk).update(started_at=started, meeting_at=started)
    for grant in board.grants.all():
        Grant.objects.filter(pk=grant.pk).update(starts_at=grant.starts_at - shift,
                                                 expires_at=grant.expires_at - shift)
    board.refresh_from_db()


def _page(board):
    return reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})


def _client(client_as, user, org):
    client = client_as(user)
    working_in(client, org)
    return client


def test_a_board_past_its_window_is_ended_in_the_model_and_in_queries(world):
    board, *_ = world
    assert board.is_live and not board.has_ended and board.state_shown == BoardState.LIVE
    assert not BoardSession.objects.filter(board_ended(), pk=board.pk).exists()
    _window_runs_out(board)
    assert board.state == BoardState.LIVE  # nobody ended it
    assert board.has_ended and not board.is_live and board.state_shown == BoardState.ENDED
    assert board.ended_at_shown == board.window_ends_at == board.started_at + board.review_window
    assert BoardSession.objects.filter(board_ended(), pk=board.pk).exists()


@pytest.mark.parametrize("who", ["consultant", "coordinator"])
def test_a_participant_finds_a_board_whose_window_ran_out_as_ended(world, org_a, client_as, who):
    board, _host, consultant, coordinator, case, study = world
    person = consultant if who == "consultant" else coordinator
    _window_runs_out(board)
    client = _client(client_as, person, org_a)

    listing = client.get(reverse("cases:board_list")).content.decode()
    assert TITLE in listing and _page(board) in listing
    assert 'class="badge badge-ended">Ended<' in listing

    page = client.get(_page(board))
    text = page.content.decode()
    assert page.status_code == 200 and TITLE in text and STATE_ENDED in text
    assert (YOURS_ENDED in text) == (who == "consultant")  # staff see its cases by their role
    assert "End meeting" not in text and "Start meeting" not in text
    if who == "consultant":
        # as on a board ended by hand: no one else's name or address, nothing of its cases
        assert 'data-testid="board-participants"' not in text and "coord@alpha.example" not in text
        assert CASE_TITLE not in text and "No case you can open." in text
        assert client.get(reverse("cases:case_detail", kwargs={"case_id": case.public_id})).status_code == 404
        assert client.get(study.get_absolute_url()).status_code == 404
        assert not policy.can(consultant, Action.VIEW_IMAGES, case)


def test_staff_and_the_host_see_it_ended_with_nothing_left_to_end(world, org_a, clinician_a, client_as):
    board, host, _consultant, _coordinator, _case, _study = world
    _window_runs_out(board)
    for person in (host, clinician_a):
        text = _client(client_as, person, org_a).get(_page(board)).content.decode()
        assert STATE_ENDED in text and THEIRS_ENDED in text and YOURS_ENDED not in text
        assert "End meeting" not in text and CASE_TITLE in text
        assert 'data-testid="board-participants"' in text  # staff keep the list, as on an ended board
    case_page = _client(client_as, clinician_a, org_a).get(
        reverse("cases:case_detail", kwargs={"case_id": world[4].public_id})).content.decode()
    assert f"{TITLE}</a> · Ended ·" in case_page  # the case page's list of its boards
    # a page of before (its End button) posts into an ended meeting: refused; the meeting stays
    # ended when its window ran out (recorded so by the first page that showed it ended), and no
    # grant is revoked (they expired with the window)
    response = _client(client_as, host, org_a).post(reverse("cases:board_end",
                                                            kwargs={"boardsession_id": board.public_id}))
    assert response.status_code == 302
    with pytest.raises(ValidationError):
        services.board_end(board=board, by=host)
    board.refresh_from_db()
    assert board.state == BoardState.ENDED and board.ended_at == board.window_ends_at
    assert not board.grants.filter(revoked_at__isnull=False).exists()


def test_within_its_window_a_live_board_is_still_live(world, org_a, client_as):
    board, _host, consultant, _coordinator, _case, _study = world
    _window_runs_out(board, by=-timedelta(hours=1))  # an hour of its window left
    text = _client(client_as, consultant, org_a).get(_page(board)).content.decode()
    assert 'data-testid="board-state">Live<' in text and YOURS_ENDED not in text and CASE_TITLE in text


def test_others_still_do_not_see_it(world, org_a, org_b, client_as):
    board, *_ = world
    bystander = member(org_a, Role.EXTERNAL_CONSULTANT, email="other.ext@stmarys.example")
    outsider = member(org_b, Role.CLINICIAN, email="dr.beta@beta.example")
    _window_runs_out(board)
    for person, org in ((bystander, org_a), (outsider, org_b)):
        client = _client(client_as, person, org)
        assert client.get(_page(board)).status_code == 404
        assert TITLE not in client.get(reverse("cases:board_list")).content.decode()
