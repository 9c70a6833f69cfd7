"""Another organization's admin could capture "Sign in with your organization": Alpha's admin added
an address at beta.example (``membership_add`` makes an account for an address that has none),
which made beta.example a domain of Alpha's staff, and named it for Alpha's provider; once the
person joined Beta, which named its own provider for the domain, the oldest configuration (Alpha's)
was the one their e-mailed link led to, to type their Beta password there.

Now an account an organization made that has never signed in does not count as its staff at a
domain, and an address that the single sign-on of several organizations takes is e-mailed no link
but the choice: each organization with its provider's host and its own entry."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client

from apps.accounts import services as accounts
from apps.accounts import sso
from apps.accounts.models import SSOConfig
from apps.organizations import services as organizations
from apps.organizations.models import Membership, Role
from tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db

START = "/accounts/sso/"


@pytest.fixture
def alpha():
    return OrganizationFactory(name="Alpha Hospital", slug="alpha")


@pytest.fixture
def beta():
    return OrganizationFactory(name="Beta Clinic", slug="beta")


@pytest.fixture
def mailed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _save(organization, by, issuer: str, domains: str) -> SSOConfig:
    return accounts.sso_config_save(organization=organization, by=by, issuer=issuer, client_id="lightbox",
                                    client_secret="a-long-client-secret-0123456789", allowed_domains=domains,
                                    enabled=True)


def test_an_account_an_organization_made_that_never_signed_in_does_not_make_a_domain_its_own(alpha, beta):
    a_admin = member(alpha, Role.ORG_ADMIN, email="admin@alpha.example")
    made, created = organizations.membership_add(organization=alpha, by=a_admin, email="rad@beta.example",
                                                 role=Role.RADIOLOGIST)
    assert created
    with pytest.raises(ValidationError) as refused:
        _save(alpha, a_admin, "https://idp.alpha-evil.example", "alpha.example, beta.example")
    assert "has signed in with an address at beta.example" in refused.value.message_dict["allowed_domains"][0]
    assert not SSOConfig.objects.filter(organization=alpha).exists()
    assert sso.sso_config_for("rad@beta.example") is None
    # the admin's own address counts though they have never signed in elsewhere: they are saving
    assert _save(alpha, a_admin, "https://idp.alpha.example", "alpha.example").domains == ["alpha.example"]
    # once the person has signed in, they are Alpha's staff at beta.example like any other
    Client().force_login(made.user)
    assert _save(alpha, a_admin, "https://idp.alpha.example", "alpha.example, beta.example")


def test_an_account_another_organization_made_counts(alpha, beta):
    """Only an account the organization itself made is left out: one Beta made (its membership the
    account's first) that joined Alpha (an invitation it accepted) is Alpha's staff at beta.example,
    as before; where Beta names the domain too, the person is then given the choice (below)."""
    a_admin = member(alpha, Role.ORG_ADMIN, email="admin@alpha.example")
    b_admin = member(beta, Role.ORG_ADMIN, email="admin@beta.example")
    made, _created = organizations.membership_add(organization=beta, by=b_admin, email="nurse@beta.example",
                                                  role=Role.CLINICIAN)
    Membership.objects.create(user=made.user, organization=alpha, role=Role.CLINICIAN)
    assert _save(alpha, a_admin, "https://idp.alpha.example", "alpha.example, beta.example")


def test_an_address_several_single_sign_ons_take_is_emailed_the_choice_and_no_link(alpha, beta, mailed):
    a_admin = member(alpha, Role.ORG_ADMIN, email="admin@alpha.example")
    b_admin = member(beta, Role.ORG_ADMIN, email="admin@beta.example")
    person = member(beta, Role.RADIOLOGIST, email="rad@beta.example")
    Membership.objects.create(user=person, organization=alpha, role=Role.RADIOLOGIST)
    Client().force_login(person)
    alpha_sso = _save(alpha, a_admin, "https://idp.alpha-evil.example", "alpha.example, beta.example")
    beta_sso = _save(beta, b_admin, "https://login.beta.example", "beta.example")
    assert sso.sso_configs_for("rad@beta.example") == [alpha_sso, beta_sso]
    assert sso.sso_config_for("rad@beta.example") is None  # neither is chosen for them
    assert sso.sso_config_for("admin@beta.example") == beta_sso

    with mailed():
        response = Client().post(START, {"email": "rad@beta.example"})
    with mailed():
        other = Client().post(START, {"email": "nobody@beta.example"})
    assert response.status_code == other.status_code == 200  # the page says the same to every address
    assert [m.to for m in mail.outbox] == [["rad@beta.example"]]
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    for text in (message.body, html):
        assert "/accounts/sso/continue/" not in text  # no link on to a provider
        assert "Alpha Hospital: signs in at idp.alpha-evil.example" in text
        assert "Beta Clinic: signs in at login.beta.example" in text
        assert re.search(r"https?://\S+/accounts/sso/alpha/", text) and re.search(r"https?://\S+/accounts/sso/beta/",
                                                                                  text)
    assert "choose" in message.subject.lower()

    # an address only one takes still gets its link
    mail.outbox.clear()
    with mailed():
        Client().post(START, {"email": "admin@beta.example"})
    assert "/accounts/sso/continue/" in mail.outbox[0].body


def test_a_link_sent_before_a_second_organization_took_the_address_leads_nowhere(alpha, beta, mailed):
    a_admin = member(alpha, Role.ORG_ADMIN, email="admin@alpha.example")
    b_admin = member(beta, Role.ORG_ADMIN, email="admin@beta.example")
    person = member(beta, Role.RADIOLOGIST, email="rad@beta.example")
    beta_sso = _save(beta, b_admin, "https://login.beta.example", "beta.example")
    url = sso.sso_link_url(user=person, config=beta_sso)
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert sso.sso_link_read(token, sso.sso_config_for) is not None
    Membership.objects.create(user=person, organization=alpha, role=Role.RADIOLOGIST)
    _save(alpha, a_admin, "https://idp.alpha.example", "alpha.example, beta.example")
    assert sso.sso_link_read(token, sso.sso_config_for) is None
