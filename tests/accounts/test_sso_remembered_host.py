"""The sign-in page's "Continue with <organization>" (the organization this browser last signed
in with through single sign-on) names the provider's host, as the organization's own page
(/accounts/sso/<slug>/) does since 21e17d1, from one piece of template
(accounts/_sso_provider_host.html): any organization's administrator sets its provider, and the
button is on the portal's address (found by review)."""

from __future__ import annotations

import html

import pytest
from django.http import HttpResponse
from django.test import Client

from apps.accounts import sso
from apps.accounts.models import SSOConfig

HOST_TEXT = "You will sign in at idp.alpha.example."


@pytest.fixture
def alpha_sso(org_a, admin_a):
    return SSOConfig.objects.create(organization=org_a, issuer="https://idp.alpha.example/realms/staff",
                                    client_id="x", allowed_domains="alpha.example", enabled=True)


@pytest.mark.django_db
def test_the_remembered_organization_names_its_providers_host_as_its_own_page_does(alpha_sso):
    browser = Client()
    kept = HttpResponse()
    sso.remember_organization(kept, alpha_sso)
    browser.cookies[sso.REMEMBERED_COOKIE] = kept.cookies[sso.REMEMBERED_COOKIE].value
    sign_in = browser.get("/accounts/login/")
    text = html.unescape(sign_in.content.decode())
    assert "Continue with Alpha Hospital" in text
    assert HOST_TEXT in text
    # the same piece of template as the organization's own page, not a copy of it
    own = browser.get("/accounts/sso/alpha/")
    shared = "accounts/_sso_provider_host.html"
    assert shared in [t.name for t in sign_in.templates] and shared in [t.name for t in own.templates]
    assert HOST_TEXT in html.unescape(own.content.decode())
    # no remembered organization: no host named
    assert "You will sign in at" not in Client().get("/accounts/login/").content.decode()
