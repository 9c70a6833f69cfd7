"""An in-app notice names the case or tumor board it is about only while its reader still sees
it (found by review of 499f9e6). The title was read from the case as it is now for anyone the
notice was written to: a radiologist who decided a request for the original DICOM, after leaving
the organization, was shown "Case “<its title as renamed since>”: …", and a case's title is free
text that may name the patient. ``policy.notices_naming`` decides (VIEW_CASE on the case, the
boards list's rule on a board), in at most one query for the cases and one for the boards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.cases import services as case_services
from apps.organizations.models import Membership, Role
from apps.sharing import services
from tests.factories import CaseFactory, grant_kill, member, working_in
from tests.pages import queries_and_html

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}
DECIDED = "You decided a request for the original DICOM."


def _notices(client) -> str:
    html = client.get(reverse("sharing:shared_with_me")).content.decode()
    return html.split('data-testid="notifications"')[1].split("</ul>")[0]


def _leave(user, org) -> None:
    Membership.objects.filter(user=user, organization=org).update(is_active=False)


def test_a_decider_who_left_the_organization_is_not_shown_the_case_title(
        org_a, org_b, case, owner, consultant, radiologist, client, django_capture_on_commit_callbacks):
    colleague = member(org_a, Role.RADIOLOGIST, email="colleague@alpha.example")  # told too, still there
    grant = services.grant_create(case=case, grantee=consultant, by=owner,
                                  expires_at=timezone.now() + timedelta(hours=10), **PREVIEW)
    with django_capture_on_commit_callbacks(execute=True):
        req = services.original_request_create(grant=grant, by=consultant, reason="Need thin slices.")
        services.original_request_decide(original_request=req, by=radiologist, approve=True, hours=12)
    # the radiologist leaves Alpha and works for Beta; Alpha renames the case after they left
    _leave(radiologist, org_a)
    Membership.objects.create(user=radiologist, organization=org_b, role=Role.RADIOLOGIST)
    case.title = "Jane Roe 1961 lung nodule"
    case.save()

    client.force_login(radiologist)
    working_in(client, org_b)
    notices = _notices(client)
    assert DECIDED in notices  # the notice itself is still theirs to read
    assert "Jane Roe" not in notices and "Case “" not in notices

    # whoever still sees the case is shown its title: staff of Alpha, the consultant under a live share
    for reader in (colleague, consultant):
        client.force_login(reader)
        working_in(client, org_a)
        assert "Case “Jane Roe 1961 lung nodule”:" in _notices(client)


def test_a_recipient_whose_share_ended_is_not_shown_the_case_title(
        org_a, case, owner, consultant, client, django_capture_on_commit_callbacks):
    grant = services.grant_create(case=case, grantee=consultant, by=owner,
                                  expires_at=timezone.now() + timedelta(hours=10), **PREVIEW)
    with django_capture_on_commit_callbacks(execute=True):
        services.original_request_create(grant=grant, by=consultant, reason="Need thin slices.")
    client.force_login(consultant)
    working_in(client, org_a)
    case.title = "Kxq renamed"
    case.save()
    assert "Case “Kxq renamed”: Your request for the original DICOM was sent." in _notices(client)
    grant_kill(grant, user=consultant, state="revoked")
    notices = _notices(client)
    assert "Your request for the original DICOM was sent." in notices
    assert "Kxq renamed" not in notices


def test_a_board_participant_who_left_is_not_shown_the_board_title(org_a, client, django_capture_on_commit_callbacks):
    host = member(org_a, Role.RADIOLOGIST, email="host@alpha.example")
    participant = member(org_a, Role.EXTERNAL_CONSULTANT, email="participant@alpha.example")
    board = case_services.board_create(organization=org_a, by=host, host=host, title="Thoracic board Wednesday",
                                       meeting_at=timezone.now() + timedelta(hours=2), review_days=6,
                                       cases=[CaseFactory(organization=org_a)], participants=[participant])
    with django_capture_on_commit_callbacks(execute=True):
        case_services.board_start(board=board, by=host)
    client.force_login(participant)
    working_in(client, org_a)
    assert "Tumor board “Thoracic board Wednesday”:" in _notices(client)
    with django_capture_on_commit_callbacks(execute=True):
        case_services.board_end(board=board, by=host)
    ended = "Tumor board “Thoracic board Wednesday”: A tumor board meeting you took part in has ended"
    assert ended in _notices(client)
    _leave(participant, org_a)
    notices = _notices(client)
    assert "has ended" in notices and "has started" in notices
    assert "Thoracic board" not in notices


def test_naming_the_notices_costs_the_same_for_2_cases_as_for_12(org_a, owner, client_as,
                                                                 django_capture_on_commit_callbacks):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="many@alpha.example")
    client = client_as(consultant)
    working_in(client, org_a)
    counts = {}
    made = 0
    for n in (2, 12):
        for i in range(made, n):
            case = CaseFactory(organization=org_a, created_by=owner, title=f"Case number {i}")
            grant = services.grant_create(case=case, grantee=consultant, by=owner,
                                          expires_at=timezone.now() + timedelta(hours=10), **PREVIEW)
            with django_capture_on_commit_callbacks(execute=True):
                services.original_request_create(grant=grant, by=consultant, reason="Need thin slices.")
        made = n
        counts[n], html = queries_and_html(client, reverse("sharing:shared_with_me"))
        assert html.count("Case “Case number") == n
    assert counts[2] == counts[12], counts
