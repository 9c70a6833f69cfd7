"""A member who leaves loses every share addressed to them in the organization, however long ago
it expired (``services.grants_end_for_member``). An expired share is not over: its sharer can
extend it, and a group share is renewed with its members. Before, only shares that expired less
than an hour before were ended, and extending an older one gave the person who left the case
again (QA: through the API's extend and renew)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.cases.models import Case
from apps.organizations.models import Membership, Role
from apps.organizations.services import membership_update
from apps.sharing import policy, services
from apps.sharing.models import Grant, OriginalRequestStatus
from apps.sharing.policy import Action
from tests.factories import member

pytestmark = pytest.mark.django_db


def _expired_share(case, owner, **recipient):
    """A custom share (renewable) that started three hours ago and expired two hours ago (well
    past ``policy.RESUME_AFTER_EXPIRY``)."""
    now = timezone.now()
    return services.grant_create(case=case, by=owner, use_case="custom", permissions=["view"], renditions=["preview"],
                                 starts_at=now - timedelta(hours=3), expires_at=now - timedelta(hours=2),
                                 **recipient)


def _leave(user, org, admin):
    membership_update(membership=Membership.objects.get(user=user, organization=org), by=admin,
                      role=Role.EXTERNAL_CONSULTANT, is_active=False)


def test_shares_that_expired_long_ago_end_with_the_membership(org_a, admin_a, case, owner, consultant):
    colleague = member(org_a, Role.EXTERNAL_CONSULTANT)
    own = _expired_share(case, owner, grantee=consultant)
    group = _expired_share(case, owner, grantee=None, group_members=[consultant, colleague], group_name="Board")
    invited = _expired_share(case, owner, grantee=None, grantee_email=consultant.email)
    assert own.expires_at < timezone.now() - policy.RESUME_AFTER_EXPIRY

    _leave(consultant, org_a, admin_a)

    for grant in (own, invited):
        grant.refresh_from_db()
        assert grant.revoked_at is not None and grant.revoke_reason == "membership_ended"
    group.refresh_from_db()
    assert group.revoked_at is None  # the others' share
    assert list(group.group_members.all()) == [colleague]


def test_extending_or_renewing_an_old_share_gives_nothing_to_a_member_who_left(org_a, admin_a, case, owner,
                                                                             consultant, client_as):
    colleague = member(org_a, Role.EXTERNAL_CONSULTANT)
    own = _expired_share(case, owner, grantee=consultant)
    group = _expired_share(case, owner, grantee=None, group_members=[consultant, colleague], group_name="Board")
    _leave(consultant, org_a, admin_a)
    api = client_as(owner)
    later = {"expires_at": (timezone.now() + timedelta(hours=20)).isoformat(), "reason": "More time to review."}

    assert api.post(f"/api/v1/grants/{own.public_id}/extend/", json.dumps(later),
                    content_type="application/json").status_code == 400
    assert api.post(f"/api/v1/grants/{group.public_id}/extend/", json.dumps(later),
                    content_type="application/json").status_code == 200  # the colleague's, still
    renewed = api.post(f"/api/v1/grants/{group.public_id}/renew/", json.dumps({}), content_type="application/json")
    assert renewed.status_code == 201, renewed.content
    new = Grant.objects.get(public_id=renewed.json()["id"])
    assert list(new.group_members.all()) == [colleague]
    case = Case.objects.get(pk=case.pk)
    assert not policy.can(consultant, Action.VIEW_IMAGES, case)
    assert not Case.objects.visible_to(consultant).filter(pk=case.pk).exists()
    assert policy.can(colleague, Action.VIEW_IMAGES, case)


@pytest.mark.parametrize("addressed", ["grantee", "group"])
def test_their_request_for_the_original_under_an_old_share_is_withdrawn(org_a, admin_a, case, owner, consultant,
                                                                       addressed):
    """Asked while the share was live and not decided before it expired: extending the share
    would bring it back to be decided (``policy.original_requests_decidable``), for someone who
    left. It is withdrawn with the share, as for a live one."""
    colleague = member(org_a, Role.EXTERNAL_CONSULTANT)
    recipient = {"grantee": consultant} if addressed == "grantee" else {
        "grantee": None, "group_members": [consultant, colleague], "group_name": "Board"}
    grant = _expired_share(case, owner, **recipient)
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    grant.refresh_from_db()
    req = services.original_request_create(grant=grant, by=consultant, reason="Need the thin-slice series.")
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(hours=2))

    _leave(consultant, org_a, admin_a)

    req.refresh_from_db()
    assert req.status == OriginalRequestStatus.WITHDRAWN and req.decided_by is None
