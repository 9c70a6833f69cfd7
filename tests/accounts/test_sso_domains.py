"""Whose single sign-on an address goes to, which e-mail domains an organization's single sign-on
may name, and which issuer addresses the portal fetches from.

An org admin could name another hospital's e-mail domain for a provider of their own: that
hospital's staff pressing "Sign in with your organization" were sent to it, to type their hospital
password there, and the hospital could then not set up its own single sign-on for its domain."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from apps.accounts import services
from apps.accounts.models import SSOConfig
from apps.accounts.sso import sso_config_for
from apps.organizations import services as org_services
from apps.organizations.models import Membership, Role
from tests.factories import member

pytestmark = pytest.mark.django_db


def _save(org, admin, domains: str, issuer: str = "https://login.example.net/o") -> SSOConfig:
    return services.sso_config_save(organization=org, by=admin, issuer=issuer, client_id="lightbox",
                                    client_secret="a-long-client-secret-0123456789", allowed_domains=domains,
                                    enabled=True)


def test_an_admin_cannot_name_another_hospitals_domain(org_a, org_b, admin_a, admin_b):
    with pytest.raises(ValidationError) as refused:
        _save(org_a, admin_a, "alpha.example, beta.example", issuer="https://idp.attacker.example")
    assert refused.value.message_dict["allowed_domains"] == [
        "No active staff member of this organization has signed in with an address at beta.example. Single "
        "sign-on takes only the domains of your staff's addresses: add the staff first, and have one of them "
        "sign in."]
    assert not SSOConfig.objects.filter(organization=org_a).exists()
    assert sso_config_for("admin@beta.example") is None
    # Beta sets up its own
    beta = _save(org_b, admin_b, "beta.example", issuer="https://login.beta.example")
    assert sso_config_for("admin@beta.example") == beta


def test_an_address_goes_only_to_the_provider_of_an_organization_it_is_staff_of(org_a, org_b, admin_a, admin_b):
    """A domain named before names were checked (or by an organization with a member at it) sends
    no one there who is not its staff: not another hospital's staff, nor its consultants, nor an
    address without an account."""
    alpha = SSOConfig.objects.create(organization=org_a, issuer="https://idp.attacker.example", client_id="x",
                                     allowed_domains="alpha.example, beta.example")
    consultant = member(org_b, Role.CLINICIAN, email="consultant@beta.example")
    Membership.objects.create(user=consultant, organization=org_a, role=Role.EXTERNAL_CONSULTANT)
    for email in ("admin@beta.example", "consultant@beta.example", "nobody@beta.example"):
        assert sso_config_for(email) is None, email
    assert sso_config_for("admin@alpha.example") == alpha
    # staff of Alpha whose membership or account ended: no longer
    Membership.objects.filter(user=admin_a).update(is_active=False)
    assert sso_config_for("admin@alpha.example") is None


def test_another_organizations_claim_does_not_keep_an_organization_from_its_own_staffs_domain(
        org_a, org_b, admin_a, admin_b):
    """Alpha's admin adds someone at beta.example as Alpha's staff (an address no account had), who
    signs in, and names beta.example: Beta, whose staff use it, names it too, and each address goes
    to the provider of the organization it is staff of."""
    decoy, _created = org_services.membership_add(organization=org_a, by=admin_a, email="decoy@beta.example",
                                                  role=Role.CLINICIAN)
    Client().force_login(decoy.user)  # has signed in (tests/accounts/test_sso_several_organizations.py)
    alpha = _save(org_a, admin_a, "alpha.example, beta.example", issuer="https://idp.alpha.example")
    beta = _save(org_b, admin_b, "beta.example", issuer="https://login.beta.example")
    assert sso_config_for("admin@beta.example") == beta
    assert sso_config_for("decoy@beta.example") == alpha
    assert sso_config_for("someone@beta.example") is None


def test_public_mail_services_are_refused(org_a, admin_a):
    for email in ("dr.one@gmail.com", "dr.two@gmx.de", "dr.three@yahoo.co.uk"):
        member(org_a, Role.RADIOLOGIST, email=email)
    for domains in ("alpha.example, gmail.com", "GMX.de", "yahoo.co.uk"):
        with pytest.raises(ValidationError) as refused:
            _save(org_a, admin_a, domains)
        assert "anyone can have an address at a public e-mail service" in refused.value.message_dict[
            "allowed_domains"][0], domains
    assert not SSOConfig.objects.exists()
    # a hospital's own domains that merely begin like one are its own
    assert not services.public_mail_domain("live.alpha.example")
    assert not services.public_mail_domain("outlook.hospital.example")
    assert services.public_mail_domain("hotmail.es") and services.public_mail_domain("proton.me")


def test_an_organization_names_its_staffs_domains_through_the_settings_page(org_a, admin_a, verified_client):
    client = verified_client(admin_a)
    data = {"enabled": "on", "issuer": "https://login.alpha.example", "client_id": "lightbox",
            "client_secret": "alpha-client-secret-0123456789", "allowed_domains": "alpha.example, beta.example"}
    response = client.post("/org/sso/", data)
    assert response.status_code == 400
    assert ("No active staff member of this organization has signed in with an address at beta.example"
            in response.content.decode())
    assert client.post("/org/sso/", {**data, "allowed_domains": "alpha.example"}).status_code == 302


# --- the issuer: an address the server fetches from -------------------------------------------

@pytest.mark.parametrize("issuer", [
    "https://127.0.0.1/o", "https://localhost:8443/o", "https://169.254.169.254/latest/meta-data",
    "https://10.0.0.8/realms/staff", "https://192.168.1.20/", "https://[::1]/o", "https://[::ffff:127.0.0.1]/o",
    "https://100.64.0.1/o", "https://host-that-resolves-nowhere.invalid/o",
])
def test_an_issuer_on_the_servers_own_networks_is_refused(org_a, admin_a, settings, issuer):
    settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = False
    with pytest.raises(ValidationError) as refused:
        _save(org_a, admin_a, "alpha.example", issuer=issuer)
    assert list(refused.value.message_dict) == ["issuer"]
    assert not SSOConfig.objects.exists()


def test_an_issuer_must_be_https(org_a, admin_a, settings):
    """A public host (an address literal: no name is looked up) over http is refused, also where
    private issuers are allowed; over https it is taken."""
    for allowed in (False, True):
        settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = allowed
        with pytest.raises(ValidationError) as refused:
            _save(org_a, admin_a, "alpha.example", issuer="http://93.184.216.34/o")
        assert refused.value.message_dict["issuer"] == [
            "The provider's address must begin with https://: its keys and tokens are fetched from it."]
    settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = False
    assert _save(org_a, admin_a, "alpha.example", issuer="https://93.184.216.34/o/").issuer == "https://93.184.216.34/o"


def test_a_local_issuer_where_the_setting_allows_it(org_a, admin_a, settings):
    """Tests and development: a provider on 127.0.0.1 over http (tests/accounts/test_sso.py)."""
    settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = True
    assert _save(org_a, admin_a, "alpha.example", issuer="http://127.0.0.1:9/o").issuer == "http://127.0.0.1:9/o"


def test_the_settings_page_says_what_is_wrong_with_the_issuer(org_a, admin_a, verified_client, settings):
    settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = False
    client = verified_client(admin_a)
    response = client.post("/org/sso/", {"enabled": "on", "issuer": "https://169.254.169.254/latest",
                                         "client_id": "lightbox", "client_secret": "alpha-client-secret-0123456789",
                                         "allowed_domains": "alpha.example"})
    assert response.status_code == 400
    assert response.context["form"].errors["issuer"] == [
        "The provider's address 169.254.169.254 is on a private or local network; the portal does not connect "
        "there. Enter the provider's public https:// address."]
    assert not SSOConfig.objects.exists()
