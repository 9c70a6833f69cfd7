"""The dashboard: what it tells each role to do next."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_an_external_consultant_is_shown_where_the_cases_shared_with_them_are(org_a, client_as):
    """A consultant's dashboard named the organization and their role, and nothing else: the one
    thing they came for, the cases shared with them, was under a menu entry it did not point to."""
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    html = client_as(consultant).get("/").content.decode()
    assert 'data-testid="consultant-next"' in html
    assert f'<a href="{reverse("sharing:shared_with_me")}">See the cases shared with you</a>' in html
    # staff have the whole menu for that: the line is the consultant's
    clinician = member(org_a, Role.CLINICIAN)
    assert 'data-testid="consultant-next"' not in client_as(clinician).get("/").content.decode()


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.ORG_ADMIN, Role.EXTERNAL_CONSULTANT])
def test_the_dashboard_reads_the_users_memberships_once(org_a, client_as, role):
    """Whether it counts the members is decided on the request's memberships
    (``policy.request_facts``), as the navigation's links are: it read them once more. (The count
    itself reads the organization's memberships: the page's own content, not the user's.)"""
    from tests.pages import page_queries, reads_of

    got, queries = page_queries(client_as(member(org_a, role)), reverse("dashboard"))
    assert got == 200
    mine = [sql for sql in reads_of(queries, "organizations_membership") if not sql.startswith("SELECT COUNT(")]
    assert len(mine) == 1, mine


def test_a_role_that_loses_the_members_stops_counting_them_on_the_next_visit(org_a, client_as):
    from apps.organizations.models import Membership

    clinician = member(org_a, Role.CLINICIAN)
    client = client_as(clinician)
    assert client.get(reverse("dashboard")).context["member_count"] == 1
    Membership.objects.filter(user=clinician, organization=org_a).update(role=Role.EXTERNAL_CONSULTANT)
    assert "member_count" not in client.get(reverse("dashboard")).context
