"""The idle sign-out of accounts that are active members of no organization: a patient holding an
education share sent to their address, a grantee whose only membership was ended. They had no
idle limit at all (``idle_limit_seconds([])`` is None): a session left open was never signed out.
Now the strictest consultants-and-patients limit of the organizations their live shares come from,
else LIGHTBOX_IDLE_MINUTES_DEFAULT."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.organizations.models import Membership, Role
from apps.sharing.services import grant_create
from tests.accounts.conftest import idle_for
from tests.factories import CaseFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def _signed_out(client, response) -> bool:
    return "_auth_user_id" not in client.session and response["Location"].startswith("/accounts/login/")


def test_an_account_of_no_organization_and_no_share_is_signed_out_after_the_default(settings, client_as):
    settings.LIGHTBOX_IDLE_MINUTES_DEFAULT = 20
    stays = client_as(UserFactory(email="stays@nowhere.example"))
    assert "_auth_user_id" in stays.session and idle_for(stays, 19).status_code in (200, 302)
    assert "_auth_user_id" in stays.session
    client = client_as(UserFactory(email="nobody@nowhere.example"))
    assert _signed_out(client, idle_for(client, 21))


def test_a_grantee_whose_membership_ended_gets_the_limit_of_the_sharing_organization(settings, org_a, org_b,
                                                                                      clinician_a, client_as):
    settings.LIGHTBOX_IDLE_MINUTES_DEFAULT = 60
    org_a.external_idle_minutes = 10
    org_a.save()
    org_b.external_idle_minutes = 30
    org_b.save()
    grantee = member(org_a, Role.EXTERNAL_CONSULTANT, email="left@ext.example")
    grant_create(case=CaseFactory(organization=org_a, created_by=clinician_a), grantee=grantee,
                 permissions=["view"], expires_at=timezone.now() + timedelta(days=1), by=clinician_a)
    other = member(org_b, Role.CLINICIAN, email="sharer@beta.example")
    grant_create(case=CaseFactory(organization=org_b, created_by=other), grantee=grantee,
                 permissions=["view"], expires_at=timezone.now() + timedelta(days=1), by=other)
    Membership.objects.filter(user=grantee).update(is_active=False)  # the grants stay (not through the service)
    client = client_as(grantee)
    idle_for(client, 9)
    assert "_auth_user_id" in client.session  # within the strictest limit (10 minutes)
    assert _signed_out(client, idle_for(client, 11))  # past it, though well within the default
