"""What a holder's lists say of a grant the policy gives them nothing under, though it has not
ended (found by review): a tumor board's participant made a patient account in its organization
(``policy._board_grant_refused``) still saw the board's case under "Shared with me" as Active,
linked, under the case's current title (renames included), and the API's list of grants received
said "active". The state comes from the policy's refusal (``policy.grants_ended_for_holder``,
``selectors.with_state(holder=...)``): "No longer available to you", no link, and the case named
by a neutral label, never by its title as it is now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.cases import services as case_services
from apps.organizations.models import Membership, Role
from apps.organizations.services import membership_update
from apps.sharing import policy, selectors
from apps.sharing.models import Grant, GrantState
from apps.sharing.services import grant_create
from tests.factories import CaseFactory, member, working_in

pytestmark = pytest.mark.django_db


def _board_participant_made_patient(org_a, org_b, *, staff_elsewhere: bool):
    admin = member(org_a, Role.ORG_ADMIN, email="adm.rsh@alpha.example")
    host = member(org_a, Role.RADIOLOGIST, email="host.rsh@alpha.example")
    part = member(org_a, Role.EXTERNAL_CONSULTANT, email="part.rsh@alpha.example")
    if staff_elsewhere:
        Membership.objects.create(user=part, organization=org_b, role=Role.CLINICIAN, is_active=True)
    case = CaseFactory(organization=org_a, title="Board case Quillon")
    board = case_services.board_create(organization=org_a, by=host, host=host, title="Board RSH",
                                       meeting_at=timezone.now() + timedelta(hours=1), review_days=6,
                                       cases=[case], participants=[part])
    case_services.board_start(board=board, by=host)
    grant = Grant.objects.addressed_to(part).get(case=case)
    assert selectors.with_state([grant], holder=part)[0].current_state == GrantState.ACTIVE  # a participant
    membership_update(membership=Membership.objects.get(user=part, organization=org_a), by=admin,
                      role=Role.PATIENT, is_active=True)
    assert not policy.can(part, policy.Action.VIEW_CASE, case)
    case.title = "Renamed Yarrowby Pemberton"
    case.save(update_fields=["title"])
    return part, case, grant


def test_shared_with_me_says_a_refused_board_grant_is_no_longer_available(org_a, org_b):
    """Staff elsewhere (a clinician of Beta), Alpha active: the page lists Alpha's board grant."""
    part, case, grant = _board_participant_made_patient(org_a, org_b, staff_elsewhere=True)
    client = Client()
    client.force_login(part)
    working_in(client, org_a)
    response = client.get(reverse("sharing:shared_with_me"))
    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-grant="{grant.public_id}"' in body
    assert "Yarrowby" not in body and "Quillon" not in body  # neither the current title nor the old one
    assert reverse("sharing:shared_case", args=[case.public_id]) not in body
    assert "No longer available to you" in body and "A case no longer shared with you" in body
    assert 'state-active"' not in body


def test_a_patient_account_alone_is_told_the_same(org_a, org_b):
    """A patient account of Alpha alone (kept to the portal, but the list's rows say the same)."""
    part, _case, grant = _board_participant_made_patient(org_a, org_b, staff_elsewhere=False)
    [shown] = selectors.with_case_titles(selectors.with_state([grant], holder=part), user=part)
    assert shown.current_state == GrantState.NO_LONGER_AVAILABLE
    assert shown.case_title_shown == "A case no longer shared with you"
    assert policy.grants_ended_for_holder(part, [grant]) == [True]


def test_received_api_reports_the_refused_board_grant_no_longer_available(org_a, org_b):
    part, _case, grant = _board_participant_made_patient(org_a, org_b, staff_elsewhere=True)
    client = Client()
    client.force_login(part)
    response = client.get("/api/v1/grants/received/")
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["results"]}
    assert rows[str(grant.public_id)]["state"] == GrantState.NO_LONGER_AVAILABLE


def test_a_live_grant_the_policy_gives_is_still_active_and_named(org_a):
    """The other side: a consultant's live share is Active under its case's title as it is now."""
    owner = member(org_a, Role.CLINICIAN, email="owner.rsh@alpha.example")
    rcpt = member(org_a, Role.EXTERNAL_CONSULTANT, email="rcpt.rsh@alpha.example")
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner, title="Live Umbervale")
    grant = grant_create(case=case, grantee=rcpt, permissions=["view"], by=owner,
                         expires_at=timezone.now() + timedelta(days=1))
    [shown] = selectors.with_case_titles(selectors.with_state([grant], holder=rcpt), user=rcpt)
    assert shown.current_state == GrantState.ACTIVE
    assert shown.case_title_shown == "Live Umbervale"
    assert policy.grants_ended_for_holder(rcpt, [grant]) == [False]


def test_my_shares_elsewhere_counts_only_shares_the_list_shows_there(org_a, org_b, client_as, monkeypatch):
    """The banner of "My shares" counts a staff member's shares in another of their organizations
    as the list shows them once switched (``policy.made_grants_listed``), not every share they
    made there. No staff role today acts for an organization without seeing its cases; the
    rule is one all the same (a coordinator here is made one that does not see them)."""
    sharer = member(org_a, Role.CLINICIAN, email="sharer.rsh@alpha.example")
    Membership.objects.create(user=sharer, organization=org_b, role=Role.CLINICIAN, is_active=True)
    rcpt = member(org_b, Role.EXTERNAL_CONSULTANT, email="rcpt.rsh@beta.example")
    case = CaseFactory(organization=org_b, created_by=sharer, responsible_clinician=sharer)
    grant_create(case=case, grantee=rcpt, permissions=["view"], by=sharer,
                 expires_at=timezone.now() + timedelta(days=1))
    client = client_as(sharer)
    working_in(client, org_a)
    assert 'data-testid="elsewhere-beta"' in client.get(reverse("sharing:my_shares")).content.decode()
    Membership.objects.filter(user=sharer, organization=org_b).update(role=Role.COORDINATOR)
    monkeypatch.setitem(policy.ROLE_ACTIONS, Role.COORDINATOR,
                        policy.ROLE_ACTIONS[Role.COORDINATOR] - {policy.Action.VIEW_CASE})
    assert policy.acts_for_organization(Role.COORDINATOR)  # still one of their organizations to switch to
    page = client.get(reverse("sharing:my_shares")).content.decode()
    assert 'data-testid="elsewhere-beta"' not in page
    working_in(client, org_b)
    assert not selectors.grants_created_by(user=sharer).filter(organization=org_b).exists()
