"""A tumor board whose review window ran out without its host ending it: the trail says when its
participants' access ended, once, whatever sees it first (the periodic sweep, its page, the list
of boards, a case page, a late click on "End meeting"); and the board ended then, not at a later
click. Before, its page said Ended while the audit trail said nothing, and (before such clicks
were refused) a late "End meeting" recorded the click as its end, as if access had lasted until
then (``services.boards_window_ends_record``, ``BoardSession.ended_at_shown``).

Actors: the host (a radiologist), an outside consultant who took part, an org admin (the audit
page)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import formats, timezone

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.cases import services
from apps.cases.models import BoardSession, BoardState
from apps.organizations.models import Role
from apps.sharing.models import Grant, GrantState
from apps.sharing.tasks import share_expiries_record_task
from tests.cases.test_board_window_ran_out import _window_runs_out
from tests.factories import CaseFactory, member, working_in

pytestmark = pytest.mark.django_db

ALREADY_ENDED = "This meeting had already ended: its review window ran out on"


@pytest.fixture
def world(org_a):
    host = member(org_a, Role.RADIOLOGIST, email="host.wer@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="ext.wer@stmarys.example")
    case = CaseFactory(organization=org_a, title="Lung nodule review")
    board = services.board_create(organization=org_a, by=host, host=host, title="Thoracic board WER",
                                  meeting_at=timezone.now() + timedelta(hours=2), review_days=5, cases=[case],
                                  participants=[consultant])
    services.board_start(board=board, by=host)
    return board, host, consultant, case


def _window_events(board) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=actions.BOARD_WINDOW_ENDED, target_id=str(board.public_id))
                .order_by("seq"))


def _client(client_as, user, org):
    client = client_as(user)
    working_in(client, org)
    return client


def _page(board) -> str:
    return reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})


def _assert_recorded_once(board) -> AuditEvent:
    """One event, by the system, naming the window's end; the board ended then."""
    window_end = board.started_at + board.review_window
    [event] = _window_events(board)
    assert event.actor_id is None and event.actor_type == "system"
    assert event.details["ended_at"] == window_end.isoformat()
    assert event.details["grants_expired"] == 1
    board.refresh_from_db()
    assert board.state == BoardState.ENDED and board.ended_at == window_end == board.ended_at_shown
    return event


def test_the_sweep_records_when_the_groups_access_ended_once(world):
    board, *_ = world
    assert share_expiries_record_task() == 0  # within its window: nothing
    _window_runs_out(board)
    # the board's grant expired (share.expired) and the board's window ended: two events, once
    assert share_expiries_record_task() == 2
    assert share_expiries_record_task() == 0
    _assert_recorded_once(board)
    assert not AuditEvent.objects.filter(action=actions.BOARD_ENDED).exists()  # nobody ended it


def test_a_board_within_its_window_is_not_recorded(world, org_a, client_as):
    board, _host, consultant, _case = world
    _window_runs_out(board, by=-timedelta(hours=1))
    assert _client(client_as, consultant, org_a).get(_page(board)).status_code == 200
    assert services.boards_window_ends_record() == 0
    board.refresh_from_db()
    assert board.state == BoardState.LIVE and board.ended_at is None and not _window_events(board)


@pytest.mark.parametrize("reader", ["board page", "board list", "case page"])
def test_the_first_page_that_shows_it_ended_records_it_and_no_later_read_again(world, org_a, client_as, reader):
    board, host, consultant, case = world
    _window_runs_out(board)
    url = {"board page": _page(board), "board list": reverse("cases:board_list"),
           "case page": reverse("cases:case_detail", kwargs={"case_id": case.public_id})}[reader]
    who = host if reader == "case page" else consultant  # the consultant no longer opens the case
    client = _client(client_as, who, org_a)
    assert client.get(url).status_code == 200
    _assert_recorded_once(board)
    assert client.get(url).status_code == 200
    assert _client(client_as, host, org_a).get(_page(board)).status_code == 200
    assert services.boards_window_ends_record() == 0
    assert len(_window_events(board)) == 1


def test_two_reads_of_one_board_as_it_was_record_one_event(world):
    """Two requests that read the board live past its window at once (each its own copy): the
    first to claim it records; the other's conditional UPDATE finds it ended, and its copy says
    so, with the window's end."""
    board, *_ = world
    _window_runs_out(board)
    first, second = BoardSession.objects.get(pk=board.pk), BoardSession.objects.get(pk=board.pk)
    assert services.boards_window_ends_record(boards=[first]) == 1
    assert services.boards_window_ends_record(boards=[second]) == 0
    assert second.state == BoardState.ENDED and second.ended_at == first.ended_at == first.window_ends_at
    _assert_recorded_once(board)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
def test_two_connections_at_once_record_one_event(world, monkeypatch):
    """The sweep records the end while a page's request, on its own connection, reads the same
    board live past its window: that request waits on the claimed row, then finds it ended."""
    from tests.threads import in_thread_until_blocked

    board, *_ = world
    _window_runs_out(board)
    real_record = services.record
    failures: list[BaseException] = []
    other = []

    def page_request():  # its own read of the board, on its own connection: live, past its window
        services.boards_window_ends_record(boards=[BoardSession.objects.get(pk=board.pk)])

    def record(**kwargs):
        if kwargs.get("action") == actions.BOARD_WINDOW_ENDED and not other:
            other.append(in_thread_until_blocked(failures, page_request))
        return real_record(**kwargs)

    monkeypatch.setattr(services, "record", record)
    assert services.boards_window_ends_record() == 1
    other[0].join(timeout=30)
    assert not failures
    _assert_recorded_once(board)


def test_a_late_click_on_end_is_refused_and_the_end_is_the_windows(world, org_a, client_as):
    """A page open since before the window ran out: its "End meeting" is refused, saying when
    the meeting ended; the board ended at the window's end, and the trail says so, not that
    someone ended it now (nor do its grants read as ended with a meeting ended by hand)."""
    board, host, _consultant, _case = world
    _window_runs_out(board, by=timedelta(days=2))
    stale = BoardSession.objects.get(pk=board.pk)  # as the open page's request read it
    response = _client(client_as, host, org_a).post(
        reverse("cases:board_end", kwargs={"boardsession_id": board.public_id}), follow=True)
    text = response.content.decode()
    assert response.status_code == 200 and ALREADY_ENDED in text
    _assert_recorded_once(board)
    assert not AuditEvent.objects.filter(action__in=[actions.BOARD_ENDED, actions.GRANT_REVOKED]).exists()
    [grant] = board.grants.all()
    assert grant.revoked_at is None and grant.state() != GrantState.ENDED_WITH_BOARD
    with pytest.raises(ValidationError, match=ALREADY_ENDED):
        services.board_end(board=stale, by=host)
    assert len(_window_events(board)) == 1
    board.refresh_from_db()
    assert board.ended_at == board.window_ends_at


def test_a_board_ended_by_hand_within_its_window_keeps_its_end(world):
    board, host, *_ = world
    services.board_end(board=board, by=host)
    board.refresh_from_db()
    assert board.ended_at < board.window_ends_at and board.ended_at_shown == board.ended_at
    assert not board.ended_by_window
    ended_after = board.ended_at - board.started_at
    _window_runs_out(board)  # long ago now: still ended when its host ended it, within its window
    BoardSession.objects.filter(pk=board.pk).update(ended_at=board.started_at + ended_after)
    board.refresh_from_db()
    assert not board.ended_by_window and board.ended_at_shown == board.ended_at < board.window_ends_at
    assert services.boards_window_ends_record() == 0 and not _window_events(board)
    with pytest.raises(ValidationError, match=r"This board is not live\."):
        services.board_end(board=board, by=host)


def test_a_board_recorded_ended_after_its_window_shows_the_windows_end(world, org_a, client_as):
    """A row of before late clicks were refused: ended by hand two days after its window ran
    out. Its page shows the window's end, when access ended, not the click."""
    board, host, *_ = world
    _window_runs_out(board, by=timedelta(days=2))
    BoardSession.objects.filter(pk=board.pk).update(state=BoardState.ENDED, ended_at=timezone.now())
    board.refresh_from_db()
    window_end = board.started_at + board.review_window
    assert board.ended_at_shown == window_end and board.ended_by_window
    text = _client(client_as, host, org_a).get(_page(board)).content.decode()
    assert f'<time datetime="{timezone.localtime(window_end).isoformat()}">' in text
    assert f'<time datetime="{timezone.localtime(board.ended_at).isoformat()}">' not in text


def test_the_audit_page_says_when_access_ended(world, org_a, admin_a, client_as):
    board, *_ = world
    _window_runs_out(board, by=timedelta(hours=30))
    share_expiries_record_task()
    window_end = board.started_at + board.review_window
    text = _client(client_as, admin_a, org_a).get(reverse("audit:event_list"),
                                                  {"action": actions.BOARD_WINDOW_ENDED}).content.decode()
    assert "Tumor board ended: its review window ran out" in text
    shown = formats.date_format(timezone.localtime(window_end), "SHORT_DATETIME_FORMAT")
    assert f"Participants&#x27; access ended at {shown}" in text or f"Participants' access ended at {shown}" in text
    assert actions.event_detail(actions.BOARD_WINDOW_ENDED, {"ended_at": "not a time"}) == ""
    assert Grant.objects.filter(board_sessions=board, revoked_at__isnull=True).count() == 1
