"""The header's "Shares" link (the shares one made, requests for originals to decide, the link to
the organization's sharing settings) is shown to whoever that page has something for, as the
policy decides (``policy.has_shares_page``): a role that shares or sets the sharing settings,
someone who made shares, or the holder of a live grant that allows resharing. It was shown to
every member, and led a coordinator or a consultant to 'You have not shared anything yet.'"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Role
from apps.sharing import policy
from tests.factories import GrantFactory, member

pytestmark = pytest.mark.django_db


def _shares_link(client) -> bool:
    """Whether the page's navigation links the Shares page."""
    html = client.get(reverse("sharing:shared_with_me")).content.decode()
    nav = re.search(r'<nav class="main-nav".*?</nav>', html, re.S).group(0)
    return f'href="{reverse("sharing:my_shares")}"' in nav


@pytest.mark.parametrize(("role", "shown"), [
    (Role.CLINICIAN, True), (Role.RADIOLOGIST, True),
    (Role.ORG_ADMIN, True),  # shares nothing, but the page holds the link to the sharing settings
    (Role.COORDINATOR, False), (Role.EXTERNAL_CONSULTANT, False),
])
def test_the_shares_link_follows_the_role(org_a, client_as, role, shown):
    assert _shares_link(client_as(member(org_a, role))) is shown


def test_a_patient_is_never_shown_the_shares_link(org_a, client_as):
    html = client_as(member(org_a, Role.PATIENT)).get(reverse("education:portal")).content.decode()
    assert f'href="{reverse("sharing:my_shares")}"' not in html


def test_a_consultant_sees_it_while_a_grant_of_theirs_allows_resharing(org_a, case, owner, consultant, client_as):
    client = client_as(consultant)
    view_only = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner)
    assert not _shares_link(client)
    reshare = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner,
                           permissions=["view", "reshare"])
    assert _shares_link(client)
    reshare.revoked_at = timezone.now()
    reshare.save(update_fields=["revoked_at"])
    assert not _shares_link(client)
    reshare.revoked_at, reshare.expires_at = None, timezone.now() - timedelta(minutes=1)
    reshare.save(update_fields=["revoked_at", "expires_at"])
    assert not _shares_link(client)
    assert view_only.is_live()


def test_whoever_made_shares_sees_it_to_look_after_them(org_a, case, owner, client_as):
    coordinator = member(org_a, Role.COORDINATOR)  # a board's host: starting the meeting shares its cases
    client = client_as(coordinator)
    assert not _shares_link(client)
    GrantFactory(organization=org_a, case=case, grantee=member(org_a, Role.EXTERNAL_CONSULTANT),
                 created_by=coordinator)
    assert _shares_link(client)


def test_the_link_costs_no_query_for_a_role_that_shares_and_two_at_most_otherwise(org_a, client_as, monkeypatch):
    def queries(user) -> int:
        client = client_as(user)
        url = reverse("sharing:shared_with_me")
        client.get(url)
        with CaptureQueriesContext(connection) as ctx:
            client.get(url)
        return len(ctx.captured_queries)

    clinician, consultant = member(org_a, Role.CLINICIAN), member(org_a, Role.EXTERNAL_CONSULTANT)
    counts = {user.pk: queries(user) for user in (clinician, consultant)}
    monkeypatch.setattr(policy, "has_shares_page", lambda user, roles=None: False)
    assert queries(clinician) == counts[clinician.pk]
    assert queries(consultant) <= counts[consultant.pk] <= queries(consultant) + 2
