"""``organization_at_sign_in`` runs at every sign-in (``user_logged_in``; every ``force_login`` of
the test suite too): it reads the two values it decides on, whether the membership last switched
to is active and its organization's public id, in one query, not the membership's and the
organization's whole rows (a profiled test run spent 8 s there). What it decides is
tests/organizations/test_sign_in_organization.py's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.organizations.models import Role
from apps.organizations.services import ACTIVE_ORG_SESSION_KEY, organization_at_sign_in
from tests.factories import MembershipFactory, member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("active", [True, False])
def test_one_query_of_the_two_values_decided_on(org_a, org_b, active):
    person = member(org_a, Role.RADIOLOGIST, email="dr.both@alpha.example")
    MembershipFactory(user=person, organization=org_b, role=Role.RADIOLOGIST, is_active=active,
                      last_switched_at=timezone.now())
    request = SimpleNamespace(session={})
    with CaptureQueriesContext(connection) as queries:
        organization_at_sign_in(user=person, request=request)
    assert request.session == ({ACTIVE_ORG_SESSION_KEY: str(org_b.public_id)} if active else {})
    [query] = queries.captured_queries
    columns = query["sql"].split(" FROM ")[0]
    assert columns.count(",") == 1, columns  # is_active, public_id
    assert '"is_active"' in columns and '"public_id"' in columns
