""""Shared with me" and "My shares" ask the policy about every grant they list; the policy reads
what those decisions need once for the page (``policy.can_each``), so the number of queries does
not grow with the number of grants."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing.models import OriginalRequest
from tests.factories import CaseFactory, GrantFactory, StudyFactory, UserFactory, member

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}
ORIGINAL = {"permissions": ["view", "download_original"], "renditions": ["original", "preview"]}


def _received(org, owner, user, rounds: int) -> None:
    """``rounds`` times: a whole-case preview share, a one-study share, a group share, a share of
    the original (nothing to ask for) and an invitation sent to the user's address, not accepted."""
    for _ in range(rounds):
        case = CaseFactory(organization=org, created_by=owner)
        GrantFactory(organization=org, case=case, grantee=user, created_by=owner, **PREVIEW)
        one_study = GrantFactory(organization=org, case=case, grantee=user, created_by=owner, **PREVIEW)
        one_study.studies.set([StudyFactory(organization=org, case=case)])
        group = GrantFactory(organization=org, case=CaseFactory(organization=org), grantee=None,
                             group_name="Board", created_by=owner, **PREVIEW)
        group.group_members.set([user, UserFactory()])
        GrantFactory(organization=org, case=CaseFactory(organization=org), grantee=user, created_by=owner,
                     **ORIGINAL)
        GrantFactory(organization=org, case=CaseFactory(organization=org), grantee=None,
                     grantee_email=user.email, created_by=owner, **PREVIEW)


def _queries(client, url: str) -> tuple[int, str]:
    client.get(url)  # the session and the like settle on the first request
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_shared_with_me_costs_the_same_for_one_round_of_grants_as_for_twelve(org_a, owner, client_as):
    few_user = member(org_a, Role.EXTERNAL_CONSULTANT)
    many_user = member(org_a, Role.EXTERNAL_CONSULTANT)
    _received(org_a, owner, few_user, 1)
    _received(org_a, owner, many_user, 12)
    url = reverse("sharing:shared_with_me")
    few, few_page = _queries(client_as(few_user), url)
    many, many_page = _queries(client_as(many_user), url)
    # what is offered is still the policy's: the preview shares (whole case, one study, group), not
    # the share of the original, nor the invitation nobody accepted yet (it is not listed)
    assert few_page.count('data-testid="request-original"') == 3
    assert many_page.count('data-testid="request-original"') == 36
    assert many <= few, (few, many)


def test_my_shares_costs_the_same_for_one_grant_as_for_twelve(org_a, client_as):
    few_owner = member(org_a, Role.CLINICIAN)
    many_owner = member(org_a, Role.CLINICIAN)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    for sharer, n in ((few_owner, 1), (many_owner, 12)):
        for _ in range(n):
            case = CaseFactory(organization=org_a, created_by=sharer, responsible_clinician=sharer)
            grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=sharer,
                                 use_case="consultant", **PREVIEW)
            OriginalRequest.objects.create(organization=org_a, case=case, grant=grant, requested_by=consultant,
                                           reason="Need the thin-slice series to measure.")
    url = reverse("sharing:my_shares")
    few, few_page = _queries(client_as(few_owner), url)
    many, many_page = _queries(client_as(many_owner), url)
    assert few_page.count("/renew/") == 1 and many_page.count("/renew/") == 12
    assert few_page.count("/sharing/requests/") == 1 and many_page.count("/sharing/requests/") == 12
    assert many <= few, (few, many)


def test_allowed_renditions_reads_what_it_decides_on_once_for_all_renditions(org_a, client_as):
    """The study page and the shared case ask which renditions may be downloaded: one reading of
    the actor's memberships and grants for every rendition (it read them again for each)."""
    from apps.sharing import policy
    from apps.sharing.usecases import RENDITION_PERMISSION

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a)
    study = StudyFactory(organization=org_a, case=case)
    GrantFactory(organization=org_a, case=case, grantee=consultant, **PREVIEW)
    with CaptureQueriesContext(connection) as queries:
        allowed = policy.allowed_renditions(consultant, study)
    assert allowed == {"preview"}
    assert len(queries) < len(RENDITION_PERMISSION), len(queries)  # not a reading per rendition
    assert allowed == {r for r, p in RENDITION_PERMISSION.items()
                       if policy.can(consultant, next(iter(policy.PERMISSION_ACTIONS[p])), study, rendition=r)}


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.COORDINATOR, Role.ORG_ADMIN, Role.EXTERNAL_CONSULTANT, None])
def test_can_actions_decides_as_can_does_reading_once(org_a, org_b, role):
    """The case page's buttons: ``can_actions`` gives ``can``'s answer for each action, with one
    reading of the actor's memberships (it was one per button)."""
    from apps.cases.selectors import PAGE_ACTIONS
    from apps.sharing import policy

    actor = member(org_a, role) if role else member(org_b, Role.CLINICIAN)
    case = CaseFactory(organization=org_a)
    if role == Role.EXTERNAL_CONSULTANT:
        GrantFactory(organization=org_a, case=case, grantee=actor, **PREVIEW)
    with CaptureQueriesContext(connection) as queries:
        decided = policy.can_actions(actor, PAGE_ACTIONS, case)
    assert decided == {a: policy.can(actor, a, case) for a in PAGE_ACTIONS}
    roles_read = [q for q in queries if '"organizations_membership"."role"' in q["sql"]]
    assert len(roles_read) <= 2, len(roles_read)  # not one per action
