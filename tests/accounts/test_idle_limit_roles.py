"""The idle sign-out takes, for each organization, the limit of the person's role there: a person
who was staff anywhere got every organization's staff limit, so an organization that asks 10
minutes of its consultants let one of them, staff at another hospital, idle for 8 hours; and the
organizations that only sent them shares were not counted at all. Now each organization's limit for
their role there (its consultants' one for a consultant or a share from it), the strictest
winning."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.middleware import idle_limit_seconds
from apps.organizations.models import Membership, Role
from apps.sharing.services import grant_create
from tests.accounts.conftest import idle_for
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha():
    return OrganizationFactory(slug="alpha-idle", staff_idle_minutes=480, external_idle_minutes=15)


@pytest.fixture
def beta():
    return OrganizationFactory(slug="beta-idle", staff_idle_minutes=480, external_idle_minutes=10)


def _memberships(user) -> list[Membership]:
    return list(Membership.objects.filter(user=user, is_active=True).select_related("organization"))


def _share(organization, grantee, **kwargs):
    sharer = member(organization, Role.CLINICIAN)
    return grant_create(case=CaseFactory(organization=organization, created_by=sharer), grantee=grantee,
                        permissions=["view"], expires_at=timezone.now() + timedelta(days=1), by=sharer, **kwargs)


def test_a_consultant_organizations_limit_applies_to_someone_staff_elsewhere(alpha, beta):
    user = member(alpha, Role.RADIOLOGIST)
    Membership.objects.create(user=user, organization=beta, role=Role.EXTERNAL_CONSULTANT)
    assert idle_limit_seconds(_memberships(user)) == 10 * 60
    assert idle_limit_seconds(_memberships(user), user) == 10 * 60


def test_staff_get_the_staff_limit_of_each_organization_they_are_staff_of(alpha, beta):
    alpha.staff_idle_minutes = 60
    alpha.save()
    user = member(alpha, Role.RADIOLOGIST)
    Membership.objects.create(user=user, organization=beta, role=Role.CLINICIAN)
    assert idle_limit_seconds(_memberships(user), user) == 60 * 60  # not a consultants' limit


def test_an_organization_that_only_sent_a_share_counts_with_its_consultants_limit(alpha, beta):
    user = member(alpha, Role.RADIOLOGIST)
    assert idle_limit_seconds(_memberships(user), user) == 480 * 60
    grant = _share(beta, user)
    assert idle_limit_seconds(_memberships(user), user) == 10 * 60
    grant.revoked_at = timezone.now()
    grant.save()
    assert idle_limit_seconds(_memberships(user), user) == 480 * 60  # a share no longer live does not count


def test_a_share_from_an_organization_they_are_staff_of_keeps_the_staff_limit(alpha):
    user = member(alpha, Role.RADIOLOGIST)
    _share(alpha, user)
    assert idle_limit_seconds(_memberships(user), user) == 480 * 60


def test_staff_with_a_share_from_a_stricter_organization_are_signed_out_after_its_limit(alpha, beta, client_as):
    user = member(alpha, Role.RADIOLOGIST, email="rad@alpha-idle.example")
    _share(beta, user)
    client = client_as(user)
    idle_for(client, 9)
    assert "_auth_user_id" in client.session
    response = idle_for(client, 11)
    assert "_auth_user_id" not in client.session and response["Location"].startswith("/accounts/login/")
