"""A tumor board's events are found by each of its cases, and the access its meeting gives says it
came from the board: "Tumor board started/ended" carried no case (a board holds several), so a
case search did not show them, and the grants it made read as an ordinary share by the host."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters, event_search
from apps.audit.services import record
from apps.organizations.models import Role
from tests.audit.test_page import _visible_cells
from tests.factories import CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def board_world(org_a, clinician_a):
    from apps.cases.services import board_create, board_end, board_start

    patient = PatientFactory(organization=org_a, mrn="MRN-BOARD-1")
    chest = CaseFactory(organization=org_a, patient=patient, title="Chest CT follow-up",
                        created_by=clinician_a, responsible_clinician=clinician_a)
    liver = CaseFactory(organization=org_a, title="Liver MR", created_by=clinician_a,
                        responsible_clinician=clinician_a)
    elsewhere = CaseFactory(organization=org_a, title="Knee MR")
    radiologist = member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")
    board = board_create(organization=org_a, by=clinician_a, host=clinician_a, title="Thoracic board",
                         meeting_at=timezone.now() + timedelta(days=1), review_days=7, cases=[chest, liver],
                         participants=[clinician_a, radiologist])
    board_start(board=board, by=clinician_a)
    board_end(board=board, by=clinician_a)
    record(action=actions.CASE_VIEWED, actor=clinician_a, organization=org_a, target=elsewhere)
    return {"board": board, "chest": chest, "liver": liver, "elsewhere": elsewhere, "patient": patient,
            "radiologist": radiologist}


def _actions(org, **filters) -> list[str]:
    return [event.action for event in event_search(organization=org, filters=AuditFilters(**filters)).order_by("seq")]


def test_the_board_events_are_found_by_each_of_its_cases(org_a, board_world):
    w = board_world
    board_events = [actions.BOARD_CREATED, actions.BOARD_STARTED, actions.BOARD_ENDED]
    for case in (w["chest"], w["liver"]):
        found = _actions(org_a, case=str(case.public_id))
        assert [a for a in found if a.startswith("board.")] == board_events
        assert found.count(actions.GRANT_CREATED) == 1 and found.count(actions.GRANT_REVOKED) == 1
    assert _actions(org_a, case="chest ct") == _actions(org_a, case=str(w["chest"].public_id))
    assert [a for a in _actions(org_a, patient="MRN-BOARD-1") if a.startswith("board.")] == board_events
    # a case the board does not hold: none of them
    assert _actions(org_a, case=str(w["elsewhere"].public_id)) == [actions.CASE_VIEWED]
    assert _actions(org_a, case="knee") == [actions.CASE_VIEWED]
    # the filters still combine
    assert _actions(org_a, case=str(w["liver"].public_id), action=actions.BOARD_STARTED) == [actions.BOARD_STARTED]


def test_a_board_of_another_organization_does_not_bring_its_events(org_a, org_b, board_world):
    from apps.cases.models import BoardSession

    assert not BoardSession.objects.for_org(org_b.pk).exists()
    assert _actions(org_b, case=str(board_world["chest"].public_id)) == []


def test_the_grants_of_a_board_name_it_and_the_page_says_so(org_a, admin_a, client_as, board_world):
    w = board_world
    grants = AuditEvent.objects.filter(action=actions.GRANT_CREATED).order_by("seq")
    assert {(g.case_ref, g.details["source"], g.details["board"]) for g in grants} == {
        (w["chest"].public_id, "board", str(w["board"].public_id)),
        (w["liver"].public_id, "board", str(w["board"].public_id))}
    label = actions.event_label(actions.GRANT_CREATED, grants[0].details)
    assert label == "Access granted (tumor board meeting)" != actions.label(actions.GRANT_CREATED)
    html = client_as(admin_a).get(reverse("audit:event_list"), {"case": str(w["chest"].public_id)}).content.decode()
    shown = [row[2] for row in _visible_cells(html)]  # the action cells, newest first
    assert shown == [
        f"{actions.label(actions.BOARD_ENDED)}{actions.BOARD_ENDED}",
        f"Access ended with the tumor board meeting{actions.GRANT_REVOKED}",
        f"Tumor board started{actions.BOARD_STARTED}", f"Access granted (tumor board meeting){actions.GRANT_CREATED}",
        f"Tumor board created{actions.BOARD_CREATED}"]


def test_the_end_of_the_grants_of_a_board_names_it(org_a, clinician_a, board_world):
    """The meeting's end revokes its grants: each grant.revoked event carries the board's id (and
    source "board"), as their grant.created does, and the page says they ended with the meeting,
    not that someone revoked them; every case of the board finds them."""
    w = board_world
    ended = AuditEvent.objects.filter(action=actions.GRANT_REVOKED).order_by("seq")
    assert {(e.case_ref, e.details["reason"], e.details["source"], e.details["board"]) for e in ended} == {
        (w["chest"].public_id, "board_ended", "board", str(w["board"].public_id)),
        (w["liver"].public_id, "board_ended", "board", str(w["board"].public_id))}
    assert len(ended) == 2  # the host's own grant is none: the radiologist's, one per case
    assert actions.event_label(actions.GRANT_REVOKED, ended[0].details) == "Access ended with the tumor board meeting"
    for case in (w["chest"], w["liver"]):
        found = event_search(organization=org_a, filters=AuditFilters(case=str(case.public_id),
                                                                      action=actions.GRANT_REVOKED))
        assert [(e.details["board"], e.case_ref) for e in found] == [(str(w["board"].public_id), case.public_id)]


def test_a_share_revoked_by_hand_names_no_board(org_a, clinician_a):
    from apps.sharing.services import grant_create, grants_revoke

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    grant = grant_create(case=CaseFactory(organization=org_a), grantee=consultant, permissions=["view"],
                         by=clinician_a, expires_at=timezone.now() + timedelta(hours=24))
    grants_revoke(grants=[grant], by=clinician_a, reason="revoked by sharer")
    event = AuditEvent.objects.get(action=actions.GRANT_REVOKED)
    assert "board" not in event.details and "source" not in event.details
    assert actions.event_label(event.action, event.details) == actions.label(actions.GRANT_REVOKED)


def test_a_share_made_on_the_share_page_keeps_its_label(org_a, clinician_a):
    from apps.sharing.services import grant_create

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    grant_create(case=CaseFactory(organization=org_a), grantee=consultant, permissions=["view"], by=clinician_a,
                 expires_at=timezone.now() + timedelta(hours=24))
    event = AuditEvent.objects.get(action=actions.GRANT_CREATED)
    assert "board" not in event.details
    assert actions.event_label(event.action, event.details) == "Access granted (shared)"
