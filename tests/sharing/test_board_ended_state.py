"""The grants a tumor board's meeting gave end with the meeting: the lists that show them (the
host's "My shares", the participant's "Shared with me", the API's state) say "Ended with the
meeting", not "Revoked" as a share someone revoked by hand (found by QA on the demo). One
mechanism: the meeting's end revokes them (``grants_revoke``, reason ``board_ended``), and
``Grant.state`` names that state; the board page's message after ending says so too."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.cases import services as case_services
from apps.organizations.models import Role
from apps.sharing.models import GrantState
from apps.sharing.services import grant_create, grants_revoke
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def board_world(org_a):
    host = member(org_a, Role.RADIOLOGIST, email="host@alpha.example")
    participant = member(org_a, Role.EXTERNAL_CONSULTANT, email="participant@alpha.example")
    case = CaseFactory(organization=org_a, title="Board case Quillon")
    board = case_services.board_create(organization=org_a, by=host, host=host, title="Thoracic board",
                                       meeting_at=timezone.now() + timedelta(hours=2), review_days=6,
                                       cases=[case], participants=[participant])
    case_services.board_start(board=board, by=host)
    # beside it, a share the host made by hand on the same case and revoked by hand
    by_hand = grant_create(case=case, grantee=participant, permissions=["view"], by=host,
                           expires_at=timezone.now() + timedelta(days=1))
    grants_revoke(grants=[by_hand], by=host, reason="revoked by sharer")
    return {"host": host, "participant": participant, "case": case, "board": board,
            "board_grant": board.grants.get(), "by_hand": by_hand}


def _states(html: str) -> dict[str, str]:
    """Each listed share's state, by its id: My shares' rows (data-grant) and Shared with me's."""
    rows = re.findall(r'<tr[^>]*data-grant="([0-9a-f-]+)"[^>]*>(.*?)</tr>', html, flags=re.S)
    return {grant: re.sub(r"\s+", " ", re.search(r'class="badge state-[^"]*"[^>]*>(.*?)</span>', row,
                                                   flags=re.S).group(1)).strip()
            for grant, row in rows}


def _end_from_the_page(client, board):
    return client.post(reverse("cases:board_end", kwargs={"boardsession_id": board.public_id}), follow=True)


def test_the_grants_of_an_ended_meeting_read_ended_with_it_in_my_shares(board_world, client_as):
    w = board_world
    client = client_as(w["host"])
    ended = _end_from_the_page(client, w["board"])
    message = " ".join(str(m) for m in ended.context["messages"])
    assert "Meeting ended: participants' access ended with it (1 grant)." == message
    assert "revoked" not in message
    page = client.get(reverse("sharing:my_shares"))
    states = _states(page.content.decode())
    assert states[str(w["board_grant"].public_id)] == "Ended with the meeting"
    assert states[str(w["by_hand"].public_id)] == "Revoked"  # a revocation by hand is still one
    assert f'state-{GrantState.ENDED_WITH_BOARD}' in page.content.decode()
    # nothing is offered on it: it ended as a revoked share does
    row = page.content.decode().split(f'data-grant="{w["board_grant"].public_id}"')[1].split("</tr>")[0]
    assert "grant_revoke" not in row and "/revoke/" not in row and "/renew/" not in row


def test_the_participant_sees_it_ended_with_the_meeting_in_shared_with_me(board_world, client_as):
    w = board_world
    case_services.board_end(board=w["board"], by=w["host"])
    html = client_as(w["participant"]).get(reverse("sharing:shared_with_me")).content.decode()
    rows = [row for row in html.split("<tr")[1:] if w["case"].title in row]
    states = sorted(re.sub(r"\s+", " ", re.search(r'class="badge state-[^"]*"[^>]*>(.*?)</span>', row,
                                                   flags=re.S).group(1)).strip() for row in rows)
    assert states == ["Ended with the meeting", "Revoked"]


def test_the_state_says_so_and_the_api_too(board_world, client_as):
    w = board_world
    case_services.board_end(board=w["board"], by=w["host"])
    board_grant, by_hand = w["board_grant"], w["by_hand"]
    board_grant.refresh_from_db()
    by_hand.refresh_from_db()
    assert board_grant.state() == GrantState.ENDED_WITH_BOARD == "ended_with_board"
    assert by_hand.state() == GrantState.REVOKED
    listed = client_as(w["host"]).get("/api/v1/grants/?mine=1").json()["results"]
    assert {g["id"]: g["state"] for g in listed} == {str(board_grant.public_id): "ended_with_board",
                                                     str(by_hand.public_id): "revoked"}


def test_a_board_grant_ended_by_closing_its_case_says_so(board_world):
    """Only the meeting's end makes "Ended with the meeting": a board's grant ended by closing its
    case says the case was closed (``ended_case_closed``), not the meeting."""
    w = board_world
    case_services.case_close(case=w["case"], by=w["host"])
    w["board_grant"].refresh_from_db()
    assert w["board_grant"].revoke_reason == "case_closed"
    assert w["board_grant"].state() == GrantState.ENDED_CASE_CLOSED


def test_closing_the_case_reads_ended_with_the_case_not_revoked(org_a, client_as):
    """QA: a consultant's Shared with me said "Revoked" of the share of a case its owner closed
    at the end of the episode of care; nobody revoked it, the case ended. Their list, the
    sharer's My shares and the API say so; a share revoked by hand before still reads Revoked."""
    owner = member(org_a, Role.RADIOLOGIST, email="owner@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    case = CaseFactory(organization=org_a, title="Closing case Pellmore", created_by=owner,
                       responsible_clinician=owner)
    closed_by_case = grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(days=3))
    by_hand = grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                           expires_at=timezone.now() + timedelta(days=3))
    grants_revoke(grants=[by_hand], by=owner, reason="revoked by sharer")
    case_services.case_close(case=case, by=owner)
    html = client_as(consultant).get(reverse("sharing:shared_with_me")).content.decode()
    rows = [row for row in html.split("<tr")[1:] if case.title in row]
    states = sorted(re.sub(r"\s+", " ", re.search(r'class="badge state-[^"]*"[^>]*>(.*?)</span>', row,
                                                   flags=re.S).group(1)).strip() for row in rows)
    assert states == ["Ended: the case was closed", "Revoked"]
    mine = _states(client_as(owner).get(reverse("sharing:my_shares")).content.decode())
    assert mine.get(str(closed_by_case.public_id)) in (None, "Ended: the case was closed")
    listed = client_as(owner).get("/api/v1/grants/?mine=1").json()["results"]
    assert {g["id"]: g["state"] for g in listed}.get(str(closed_by_case.public_id)) in (None, "ended_case_closed")
    closed_by_case.refresh_from_db()
    assert closed_by_case.state() == GrantState.ENDED_CASE_CLOSED == "ended_case_closed"
