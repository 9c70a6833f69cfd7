""""My shares" and "Shared with me" a page at a time: a busy sharer's thousands of grants were
cut at 200 without a word; now each page says which of how many it shows, with the rest a link
away, and what the policy offers is asked for the page's grants only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing import views
from tests.factories import CaseFactory, GrantFactory, member
from tests.pages import page_range, pages_of_seven, queries_and_html

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}


@pytest.fixture
def shares(org_a):
    sharer, consultant = member(org_a, Role.CLINICIAN), member(org_a, Role.EXTERNAL_CONSULTANT)
    for i in range(7):
        case = CaseFactory(organization=org_a, title=f"Shared case {i}", created_by=sharer,
                           responsible_clinician=sharer)
        GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=sharer, **PREVIEW)
    return sharer, consultant


@pytest.mark.parametrize(("who", "url_name", "row"), [
    ("sharer", "sharing:my_shares", "/revoke/"),
    ("consultant", "sharing:shared_with_me", 'data-testid="request-original"'),
])
def test_the_share_lists_come_a_page_at_a_time(shares, client_as, monkeypatch, who, url_name, row):
    monkeypatch.setattr(views, "SHARES_PAGE_SIZE", 3)
    user = shares[0] if who == "sharer" else shares[1]
    client = client_as(user)
    url = reverse(url_name)
    pages = pages_of_seven(client, url, shown_in=lambda html: {
        f"Shared case {i}" for i in range(7) if f"Shared case {i}<" in html})
    for html, shown in pages:  # each row still offers what the policy allows (asked for the page's grants)
        assert html.count(row) == len(shown)
    assert 'href="?page=2" rel="prev"' in html and 'rel="next"' not in html


def test_the_share_lists_cost_the_same_for_a_page_of_3_as_for_a_page_of_30(org_a, client_as):
    sharers = [member(org_a, Role.CLINICIAN) for _ in range(2)]
    consultants = [member(org_a, Role.EXTERNAL_CONSULTANT) for _ in range(2)]
    counts = {}
    for sharer, consultant, n in ((sharers[0], consultants[0], 3), (sharers[1], consultants[1], 30)):
        for _ in range(n):
            case = CaseFactory(organization=org_a, created_by=sharer, responsible_clinician=sharer)
            GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=sharer, **PREVIEW)
        counts[n] = (queries_and_html(client_as(sharer), reverse("sharing:my_shares"))[0],
                     queries_and_html(client_as(consultant), reverse("sharing:shared_with_me"))[0])
    assert counts[3] == counts[30], counts


def test_a_shared_case_lists_its_studies_a_page_at_a_time(org_a, client_as, monkeypatch):
    from tests.factories import StudyFactory

    monkeypatch.setattr(views, "SHARES_PAGE_SIZE", 3)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a)
    for i in range(7):
        StudyFactory(organization=org_a, case=case, study_description=f"Shared study {i}")
    GrantFactory(organization=org_a, case=case, grantee=consultant, **PREVIEW)
    url = reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    client = client_as(consultant)
    pages = pages_of_seven(client, url, param="studies", shown_in=lambda html: {
        f"Shared study {i}" for i in range(7) if f">Shared study {i}</a>" in html})
    assert 'href="?studies=2#studies-heading" rel="prev"' in pages[-1][0]


def test_my_shares_lists_every_request_the_sharer_may_decide_a_page_at_a_time(org_a, client_as, monkeypatch):
    """With more than 100 requests waiting in the organization, those the sharer may decide (on
    their own shares) were lost behind others' when the first 100 were taken before the policy
    was asked; now all are asked at once, newest first, and shown a page at a time."""
    from apps.sharing.models import OriginalRequest

    sharer, other = member(org_a, Role.CLINICIAN), member(org_a, Role.CLINICIAN)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)

    def requests(by, n, reason):
        # each of its own case: one request a person and case waits (one_pending_original_request)
        for i in range(n):
            grant = GrantFactory(organization=org_a, case=CaseFactory(organization=org_a, created_by=by,
                                                                      responsible_clinician=by),
                                 grantee=consultant, created_by=by, **PREVIEW)
            OriginalRequest.objects.create(organization=org_a, case=grant.case, grant=grant, requested_by=consultant,
                                           reason=f"{reason} {i}")

    requests(sharer, 4, "Mine")  # older than the others: the 100 newest waiting were all others'
    requests(other, 101, "Not mine")  # the sharer sees them (same organization) but may not decide them
    monkeypatch.setattr(views, "SHARES_PAGE_SIZE", 3)
    client = client_as(sharer)
    url = reverse("sharing:my_shares")
    _n, first = queries_and_html(client, url)
    _n, second = queries_and_html(client, url + "?requests=2")
    assert first.count("/sharing/requests/") == 3 and second.count("/sharing/requests/") == 1
    assert page_range(first) == "Showing 1–3 of 4" and 'href="?requests=2#pending-heading" rel="next"' in first
