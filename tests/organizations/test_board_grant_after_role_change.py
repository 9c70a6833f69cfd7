"""A tumor board's grants give its participants its cases only while they take part in boards in
its organization (found by review): ``board_start`` leaves patient accounts out because such a
grant shows every case on the board, other patients' too, yet a participant made a patient account
during the meeting (``membership_update``) kept them all until it ended. The policy asks the
holder's role at each decision, as it asks expiry (``policy._board_grant_refused``), and the lists
follow it: the cases list, the boards list, what "who has access" says the grant gives."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.cases import services as case_services
from apps.cases.models import BoardSession, Case
from apps.organizations.models import Membership, Role
from apps.organizations.services import membership_update
from apps.sharing import policy
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def live_board(org_a, org_b):
    admin = member(org_a, Role.ORG_ADMIN, email="adm.brc@alpha.example")
    host = member(org_a, Role.RADIOLOGIST, email="host.brc@alpha.example")
    part = member(org_a, Role.EXTERNAL_CONSULTANT, email="part.brc@alpha.example")
    Membership.objects.create(user=part, organization=org_b, role=Role.CLINICIAN, is_active=True)  # staff elsewhere
    case = CaseFactory(organization=org_a, title="Someone else's case")
    board = case_services.board_create(organization=org_a, by=host, host=host, title="Board Q",
                                       meeting_at=timezone.now() + timedelta(hours=1), review_days=6,
                                       cases=[case], participants=[part])
    case_services.board_start(board=board, by=host)
    return {"admin": admin, "part": part, "case": case, "board": board,
            "membership": Membership.objects.get(user=part, organization=org_a)}


def _reaches(user, case, board) -> dict[str, bool]:
    return {"view_case": policy.can(user, policy.Action.VIEW_CASE, case),
            "view_images": policy.can(user, policy.Action.VIEW_IMAGES, case),
            "cases_list": Case.objects.visible_to(user).filter(pk=case.pk).exists(),
            "boards_list": BoardSession.objects.visible_to(user).filter(pk=board.pk).exists()}


def test_a_participant_made_a_patient_account_loses_the_boards_cases_at_once(live_board):
    w = live_board
    assert all(_reaches(w["part"], w["case"], w["board"]).values())  # a participant, during the meeting
    membership_update(membership=w["membership"], by=w["admin"], role=Role.PATIENT, is_active=True)
    assert _reaches(w["part"], w["case"], w["board"]) == dict.fromkeys(
        ("view_case", "view_images", "cases_list", "boards_list"), False)
    grant = w["board"].grants.get()
    assert policy.grants_give_holders([grant]) == [()]
    assert policy.grant_gives(w["part"], [grant]) == [()]

