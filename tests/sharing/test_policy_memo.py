"""The policy builds the filters of a person's live grants once per request
(``policy.request_memo``, opened by ``apps.sharing.middleware.PolicyMemoMiddleware``), not at
each of the page's querysets: they were built two to four times a page (the case list: its
service lines, its counts, its rows, the navigation's "Shares" link). They stay subqueries, so
nothing read is kept; but they hold the moment they were built at, so a write in the request
empties the memo (a share made in it is seen by what the request asks next), and the next
request builds them again (a revoked share stops there)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.cases.models import Case
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing import services as sharing
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import CaseFactory, GrantFactory, member

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}


@pytest.fixture
def builds(monkeypatch):
    """How many times the filter of the grants that give a person the education copy only
    (``policy.patient_grants``, part of the live grants' filter) was built."""
    calls = []
    real = policy.patient_grants
    monkeypatch.setattr(policy, "patient_grants", lambda user: calls.append(user.pk) or real(user))
    return calls


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.EXTERNAL_CONSULTANT])
def test_a_page_builds_the_live_grants_filter_once(org_a, client_as, builds, role):
    user = member(org_a, role)
    case = CaseFactory(organization=org_a)
    GrantFactory(organization=org_a, case=case, grantee=user, **PREVIEW)
    client = client_as(user)
    # the case list: once (3 times before: its service lines, counts and rows; 4 with the "Shares"
    # link's question); the case page: once, and for a consultant once more, for the "Shares" link
    # asked after the page recorded that it was viewed (a write empties the memo) (4 times before)
    for url, most in ((reverse("cases:case_list"), 1), (reverse("cases:case_detail", args=[case.public_id]), 2)):
        client.get(url)
        builds.clear()
        assert client.get(url).status_code == 200
        assert set(builds) == {user.pk} and len(builds) <= most, (url, builds)


def test_no_memo_outside_a_request(org_a, builds):
    """A task, a command, a test: each call builds its own (nothing kept between them)."""
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    assert policy._request_memo.get() is None
    list(Case.objects.visible_to(consultant))
    list(Case.objects.visible_to(consultant))
    assert len(builds) == 2


def test_a_share_made_in_the_request_is_seen_by_what_it_asks_next(org_a, clinician_a):
    """The memo holds the moment its filters were built at: a share made after it starts later,
    and was not live for them. A write on the connection empties the memo."""
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    with policy.request_memo():
        assert not Case.objects.visible_to(consultant).filter(pk=case.pk).exists()  # builds the memo
        sharing.share_create(case=case, by=clinician_a, use_case=UseCase.SECOND_OPINION,
                             recipient_kind=RecipientKind.USER, grantee=consultant)
        assert Case.objects.visible_to(consultant).filter(pk=case.pk).exists()
        assert case.pk in {row["case_id"] for row in policy.granted_case_ids(consultant)}


def test_a_share_revoked_in_the_request_stops_at_once(org_a, clinician_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=clinician_a, **PREVIEW)
    with policy.request_memo():
        assert Case.objects.visible_to(consultant).filter(pk=case.pk).exists()
        sharing.grants_revoke(grants=[grant], by=clinician_a, reason="test")
        assert not Case.objects.visible_to(consultant).filter(pk=case.pk).exists()


def test_a_share_revoked_between_requests_stops_at_the_next(org_a, clinician_a, client_as):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=clinician_a, **PREVIEW)
    client = client_as(consultant)
    url = reverse("cases:case_detail", args=[case.public_id])
    assert client.get(url).status_code == 200
    sharing.grants_revoke(grants=[grant], by=clinician_a, reason="test")
    assert client.get(url).status_code == 404
    assert policy._request_memo.get() is None  # the request's memo ended with it
