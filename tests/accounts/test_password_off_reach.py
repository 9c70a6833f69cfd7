"""An organization that turned password sign-in off refuses the password only of whom its own
single sign-on signs in instead. Its admin once made another hospital's radiologist (a
consultant there) "staff": their password was refused everywhere while the organization's
provider could not take their address, and they had no way in."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.adapters import password_login_refused
from apps.accounts.models import SSOConfig
from apps.organizations.models import Membership, Role
from tests.accounts.conftest import enrol
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha_sso_only(org_a):
    """Alpha signs its staff in through its provider, which takes alpha.example, and only so."""
    config = SSOConfig.objects.create(organization=org_a, issuer="https://idp.alpha.example", client_id="x",
                                      allowed_domains="alpha.example", enabled=True)
    org_a.password_login_allowed = False
    org_a.save()
    return config


def _password_refused(email: str) -> bool:
    response = Client().post("/accounts/login/", {"login": email, "password": TEST_PASSWORD})
    if response.status_code == 302:
        return False
    assert response.status_code == 200 and "signs staff in through its single sign-on" in response.content.decode()
    return True


def test_another_hospitals_radiologist_made_staff_keeps_their_password(org_a, org_b, alpha_sso_only):
    """The reviewer's case: staff made so before ``membership_update`` refused it."""
    victim = member(org_b, Role.RADIOLOGIST, email="victim@beta.example")
    enrol(victim)
    Membership.objects.create(user=victim, organization=org_a, role=Role.RADIOLOGIST)
    assert not _password_refused(victim.email)


def test_staff_whose_address_the_provider_does_not_take_keep_their_password(org_a, alpha_sso_only):
    reader = member(org_a, Role.RADIOLOGIST, email="reader@partner.example")
    assert not password_login_refused(reader)
    assert not _password_refused(reader.email)
    staff = member(org_a, Role.RADIOLOGIST, email="reader@alpha.example")
    assert _password_refused(staff.email)
    # a provider switched off signs no one in
    SSOConfig.objects.filter(pk=alpha_sso_only.pk).update(enabled=False)
    assert not _password_refused(staff.email)


def test_staff_of_an_organization_that_allows_passwords_keep_theirs(org_a, org_b, alpha_sso_only):
    """Staff of Alpha and of Beta (which lets its staff sign in with a password), with a second
    factor, so Alpha's provider could sign them in: Beta's way in stays theirs, the second factor
    after it. Made Beta's admin instead, the same; Beta turning passwords off too, Alpha's provider."""
    person = member(org_a, Role.CLINICIAN, email="dual@alpha.example")
    enrol(person)
    beta = Membership.objects.create(user=person, organization=org_b, role=Role.CLINICIAN)
    assert not _password_refused(person.email)
    org_b.password_login_allowed = False
    org_b.save()
    assert _password_refused(person.email)
    Membership.objects.filter(pk=beta.pk).update(role=Role.ORG_ADMIN)  # an org admin keeps their password
    assert not _password_refused(person.email)
