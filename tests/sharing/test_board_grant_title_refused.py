"""A tumor board's grant refused to its holder (made a patient account there mid-meeting, so no
longer in a role that takes part in boards) whose case is renamed before the meeting ends: their
"Shared with me" names the case as it was when their access ended, never by the later title
(which may name the patient) and never by nothing. The rename kept no title on such a grant (it
had not ended itself), so once the meeting ended it was listed under the new title
(``services.grants_case_title_keep``, ``Grant.case_title_at_end``)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.cases import services as case_services
from apps.cases.models import BoardSession
from apps.organizations.models import Membership, Role
from apps.organizations.services import membership_update
from apps.sharing import policy, selectors
from apps.sharing.models import Grant, GrantState
from tests.factories import CaseFactory, member, working_in

pytestmark = pytest.mark.django_db

AT_END, RENAMED, RENAMED_AGAIN = "Board case Quillon", "Renamed Yarrowby Pemberton", "Yarrowby Pemberton, left"


@pytest.fixture
def refused(org_a, org_b):
    """A participant (also a clinician of Beta, so they keep a "Shared with me" page) whose board
    grant Alpha's admin refused by making them a patient account there, mid-meeting."""
    admin = member(org_a, Role.ORG_ADMIN, email="adm.bgt@alpha.example")
    host = member(org_a, Role.RADIOLOGIST, email="host.bgt@alpha.example")
    part = member(org_a, Role.EXTERNAL_CONSULTANT, email="part.bgt@alpha.example")
    Membership.objects.create(user=part, organization=org_b, role=Role.CLINICIAN, is_active=True)
    case = CaseFactory(organization=org_a, title=AT_END, created_by=host, responsible_clinician=host)
    board = case_services.board_create(organization=org_a, by=host, host=host, title="Board BGT",
                                       meeting_at=timezone.now() + timedelta(hours=1), review_days=6,
                                       cases=[case], participants=[part])
    case_services.board_start(board=board, by=host)
    grant = Grant.objects.addressed_to(part).get(case=case)
    membership_update(membership=Membership.objects.get(user=part, organization=org_a), by=admin,
                      role=Role.PATIENT, is_active=True)
    assert policy.grants_ended_for_holder(part, [grant]) == [True]
    return board, host, part, case, grant


def _rename(case, by, title):
    case.refresh_from_db()
    case_services.case_update(case=case, by=by, values={"title": title})


def _shown(part, grant) -> tuple[str, str]:
    grant.refresh_from_db()
    [row] = selectors.with_case_titles(selectors.with_state([grant], holder=part), user=part)
    return row.current_state, row.case_title_shown


def _page_cells(part, org_a) -> list[str]:
    client = Client()
    client.force_login(part)
    working_in(client, org_a)
    html = client.get(reverse("sharing:shared_with_me")).content.decode()
    return [re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r'<td[^>]*data-testid="received-case"[^>]*>(.*?)</td>', html, flags=re.S)]


def test_renamed_while_refused_then_ended_by_its_host_names_the_case_as_at_the_end(refused, org_a):
    board, host, part, case, grant = refused
    _rename(case, host, RENAMED)
    assert _shown(part, grant) == (GrantState.NO_LONGER_AVAILABLE, AT_END)
    case_services.board_end(board=board, by=host)
    assert _shown(part, grant) == (GrantState.ENDED_WITH_BOARD, AT_END)
    _rename(case, host, RENAMED_AGAIN)  # a later rename changes nothing of it
    assert _shown(part, grant) == (GrantState.ENDED_WITH_BOARD, AT_END)
    assert _page_cells(part, org_a) == [AT_END]


def test_renamed_while_refused_then_its_window_ran_out_names_the_case_as_at_the_end(refused, org_a):
    board, host, part, case, grant = refused
    _rename(case, host, RENAMED)
    shift = board.review_window + timedelta(hours=1)
    BoardSession.objects.filter(pk=board.pk).update(started_at=board.started_at - shift)
    Grant.objects.filter(pk=grant.pk).update(starts_at=grant.starts_at - shift, expires_at=grant.expires_at - shift)
    state, title = _shown(part, grant)
    assert state in (GrantState.EXPIRED_USED, GrantState.EXPIRED_UNUSED) and title == AT_END
    assert _page_cells(part, org_a) == [AT_END]


def test_a_participant_whose_access_still_stands_sees_the_rename(refused, org_a):
    """The other side: another participant, still an outside consultant, is named the case as it
    is now while the meeting lasts, and as it was at its end afterwards."""
    _board, host, _part, case, _grant = refused
    other = member(org_a, Role.EXTERNAL_CONSULTANT, email="other.bgt@alpha.example")
    other_grant = case_services.grant_create(case=case, grantee=other, permissions=["view"], by=host,
                                             expires_at=timezone.now() + timedelta(days=1))
    _rename(case, host, RENAMED)
    assert _shown(other, other_grant) == (GrantState.ACTIVE, RENAMED)
    assert other_grant.case_title_at_end is None
