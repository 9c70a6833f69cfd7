"""A member of several organizations starts a sign-in in the organization they last switched to
(remembered on the server, on the membership: ``Membership.last_switched_at``), while that
membership is active; otherwise, and before any switch, in the first one (by name), as before.
Found by QA: someone who works in Beta every day was put back in Alpha at each sign-in."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.organizations.models import Membership, Role
from tests.factories import MembershipFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def both(org_a, org_b):
    """A radiologist of Alpha Hospital (the first by name) and of Beta Clinic."""
    user = member(org_b, Role.RADIOLOGIST, email="dr.both@beta.example")
    MembershipFactory(user=user, organization=org_a, role=Role.RADIOLOGIST)
    return user


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)  # django.contrib.auth.login: as every way of signing in
    return client


def _working_in(client: Client):
    return client.get(reverse("sharing:my_shares")).wsgi_request.organization


def _switch(client: Client, organization) -> None:
    url = reverse("organizations:switch", kwargs={"organization_id": organization.public_id})
    assert client.post(url).status_code == 302


def _sign_out(client: Client) -> None:
    assert client.post(reverse("account_logout")).status_code == 302


def test_a_sign_in_starts_in_the_organization_last_switched_to(both, org_a, org_b):
    client = _signed_in(both)
    assert _working_in(client) == org_a  # never switched: the first, as before
    _switch(client, org_b)
    _sign_out(client)
    assert _working_in(_signed_in(both)) == org_b  # another browser too: kept on the server
    again = _signed_in(both)
    _switch(again, org_a)
    _sign_out(again)
    assert _working_in(_signed_in(both)) == org_a


def test_an_organization_left_since_is_not_where_a_sign_in_starts(both, org_a, org_b):
    org_c = OrganizationFactory(name="Gamma Centre", slug="gamma")
    MembershipFactory(user=both, organization=org_c, role=Role.CLINICIAN)
    client = _signed_in(both)
    _switch(client, org_b)
    _switch(client, org_c)  # the last one switched to
    _sign_out(client)
    Membership.objects.filter(user=both, organization=org_c).update(is_active=False)
    assert _working_in(_signed_in(both)) == org_a  # as before: the first, not the one switched to earlier


def test_a_switch_someone_else_made_is_not_theirs(both, org_a, org_b):
    other = member(org_a, Role.CLINICIAN, email="other@alpha.example")
    MembershipFactory(user=other, organization=org_b, role=Role.CLINICIAN)
    _switch(_signed_in(other), org_b)
    assert _working_in(_signed_in(both)) == org_a
    assert _working_in(_signed_in(other)) == org_b
