"""Grants: the only way an outsider reaches a case, checked live on every call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.cases.models import Case
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.policy import Action
from tests.factories import DEAD_GRANT_STATES, CaseFactory, GrantFactory, grant_kill, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(org_a):
    return CaseFactory(organization=org_a)


@pytest.fixture
def consultant(org_a):
    return member(org_a, Role.EXTERNAL_CONSULTANT)


def test_outsider_without_grant_sees_nothing(case, consultant):
    assert not policy.can(consultant, Action.VIEW_CASE, case)
    assert not Case.objects.visible_to(consultant).exists()


@pytest.mark.parametrize(("permissions", "allowed"), [
    (["view"], {Action.VIEW_CASE, Action.VIEW_IMAGES}),
    (["view", "download_preview"], {Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW}),
    (["view", "download_original"], {Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_ORIGINAL}),
    (["download_preview"], {Action.VIEW_CASE, Action.DOWNLOAD_PREVIEW}),
])
def test_a_live_grant_allows_exactly_its_permissions(case, consultant, permissions, allowed):
    GrantFactory(organization=case.organization, case=case, grantee=consultant, permissions=permissions)
    case_actions = {Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL,
                    Action.SHARE_CASE, Action.MANAGE_CASE}
    for action in case_actions:
        assert policy.can(consultant, action, case) is (action in allowed), action
    assert list(Case.objects.visible_to(consultant)) == [case]
    # a grant on one case says nothing about the organization's other cases
    other = CaseFactory(organization=case.organization)
    assert not policy.can(consultant, Action.VIEW_CASE, other)


@pytest.mark.parametrize("state", DEAD_GRANT_STATES)
def test_a_dead_grant_allows_nothing(case, consultant, state):
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, permissions=["view"])
    assert policy.can(consultant, Action.VIEW_IMAGES, case)
    grant_kill(grant, user=consultant, state=state)
    case.refresh_from_db()
    assert not policy.can(consultant, Action.VIEW_CASE, case)
    assert not policy.can(consultant, Action.VIEW_IMAGES, case)
    assert not Case.objects.visible_to(consultant).exists()
    assert grant.is_live() is False or state == "user_inactive"


def test_coordinator_sees_status_but_not_pixels(case, org_a):
    coordinator = member(org_a, Role.COORDINATOR)
    assert policy.can(coordinator, Action.VIEW_CASE, case)
    assert not policy.can(coordinator, Action.VIEW_IMAGES, case)
    assert not policy.can(coordinator, Action.DOWNLOAD_ORIGINAL, case)


def test_grant_services_create_and_revoke_with_audit(case, consultant, admin_a):
    from django.core.exceptions import ValidationError

    from apps.audit.models import AuditEvent
    from apps.sharing.services import grant_create, grants_revoke

    grant = grant_create(case=case, grantee=consultant, permissions=["view"], by=admin_a,
                         expires_at=timezone.now() + timedelta(hours=2))
    assert policy.can(consultant, Action.VIEW_IMAGES, case)
    assert grants_revoke(grants=[grant], by=admin_a, reason="test") == 1
    assert grants_revoke(grants=[grant], by=admin_a, reason="again") == 0
    assert not policy.can(consultant, Action.VIEW_IMAGES, case)
    actions = list(AuditEvent.objects.filter(case_ref=case.public_id).values_list("action", flat=True))
    assert actions == ["grant.created", "grant.revoked"]
    with pytest.raises(ValidationError):
        grant_create(case=case, grantee=consultant, permissions=["fly"], by=admin_a,
                     expires_at=timezone.now() + timedelta(hours=2))
    with pytest.raises(ValidationError):
        grant_create(case=case, grantee=consultant, permissions=["view"], by=admin_a,
                     expires_at=timezone.now() - timedelta(hours=2))
