"""Who is told of a new request for the original DICOM (``services._deciders``) is decided for
all candidates at once (``policy.users_who_can``: their memberships in one query), found by
review: asking ``policy.can`` of each cost a query a radiologist, inside the request's
transaction (22 radiologists: 25 queries)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.organizations.models import Membership, Role
from apps.sharing import policy, services
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db


def _request_in(org, n: int, tag: str):
    owner = member(org, Role.CLINICIAN, email=f"owner.{tag}@{org.slug}.example")
    rcpt = member(org, Role.EXTERNAL_CONSULTANT, email=f"rcpt.{tag}@{org.slug}.example")
    for i in range(n):
        member(org, Role.RADIOLOGIST, email=f"rad{i}.{tag}@{org.slug}.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner)
    grant = services.grant_create(case=case, grantee=rcpt, by=owner, permissions=["view", "download_preview"],
                                  renditions=["preview"], expires_at=timezone.now() + timedelta(hours=10))
    return services.original_request_create(grant=grant, by=rcpt, reason="Thin slices, please.")


def _deciders_and_queries(req) -> tuple[list, int]:
    with CaptureQueriesContext(connection) as ctx:
        found = services._deciders(req)
    return found, len(ctx.captured_queries)


def test_deciders_queries_do_not_grow_with_radiologists(org_a, org_b):
    few, few_queries = _deciders_and_queries(_request_in(org_a, 2, "few"))
    many, many_queries = _deciders_and_queries(_request_in(org_b, 22, "many"))
    # the radiologists, and the case's owner (a clinician: their role downloads originals)
    assert len(few) == 3 and len(many) == 23
    assert many_queries == few_queries


def test_users_who_can_decides_as_can_does(org_a, org_b):
    """The same answer as ``can`` for each: a radiologist there decides; one whose membership
    ended, one made a coordinator, a radiologist of another organization and the requester do not."""
    req = _request_in(org_a, 1, "same")
    stays = member(org_a, Role.RADIOLOGIST, email="stays.same@alpha.example")
    left = member(org_a, Role.RADIOLOGIST, email="left.same@alpha.example")
    Membership.objects.filter(user=left).update(is_active=False)
    moved = member(org_a, Role.RADIOLOGIST, email="moved.same@alpha.example")
    Membership.objects.filter(user=moved).update(role=Role.COORDINATOR)
    elsewhere = member(org_b, Role.RADIOLOGIST, email="else.same@beta.example")
    people = [stays, left, moved, elsewhere, req.requested_by, req.grant.created_by]
    expected = [u for u in people if policy.can(u, policy.Action.DECIDE_ORIGINAL_REQUEST, req)]
    assert expected == [stays, req.grant.created_by]
    assert policy.users_who_can(people, policy.Action.DECIDE_ORIGINAL_REQUEST, req) == expected
