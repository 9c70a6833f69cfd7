"""The link "Sign in with your organization" e-mails (one use, 30 minutes) is used up only once
the redirect to the provider is built (apps.accounts.sso.sso_link_start): a provider that cannot be
reached, or a start that fails otherwise, leaves it usable until it expires (found by review: the
person had to ask for a new e-mail); it still leads on once only, and never from two browsers at
once (a lock in the cache while the start runs)."""

from __future__ import annotations

import socket

import pytest
from django.http import HttpResponse
from django.shortcuts import redirect
from django.test import Client

from apps.accounts import sso, views
from apps.accounts.models import SSOConfig
from apps.organizations.models import Role
from tests.factories import member

AT_THE_IDP = "https://idp.alpha.example/authorize?state=x"


@pytest.fixture
def alpha_sso(org_a, admin_a):
    return SSOConfig.objects.create(organization=org_a, issuer="https://idp.alpha.example/realms/staff",
                                    client_id="x", allowed_domains="alpha.example", enabled=True)


@pytest.fixture
def link(alpha_sso):
    sam = member(alpha_sso.organization, Role.CLINICIAN, email="sam@alpha.example")
    return sso.sso_link_url(user=sam, config=alpha_sso)


@pytest.fixture
def idp_down(alpha_sso, monkeypatch):
    """The provider's server is down: its name resolves (to 127.0.0.1 here, which the test settings
    let the sign-in reach), and nothing answers at its port, so the discovery document cannot be
    fetched."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    SSOConfig.objects.filter(pk=alpha_sso.pk).update(issuer=f"https://idp.alpha.example:{port}/realms/staff")
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real("127.0.0.1" if host == "idp.alpha.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.django_db
def test_a_provider_that_cannot_be_reached_leaves_the_link_usable(link, idp_down, monkeypatch):
    browser = Client()
    down = browser.post(link)  # allauth's start: the discovery document cannot be fetched
    assert down.status_code == 503, down.content[:300]
    assert "cannot be reached at the moment" in down.content.decode()
    assert "sso-link-refused" not in down.content.decode()
    assert browser.get(link).status_code == 200  # still the button on to the provider
    # the provider answers again: the same link goes on, once
    monkeypatch.setattr(views, "sso_provider_login", lambda request, pid: redirect(AT_THE_IDP))
    assert browser.post(link)["Location"] == AT_THE_IDP
    again = browser.post(link)
    assert again.status_code == 400 and "expired or can no longer be used" in again.content.decode()
    assert Client().post(link).status_code == 400  # nor in another browser


@pytest.mark.django_db
def test_an_error_page_from_the_start_leaves_the_link_usable(link, monkeypatch):
    """allauth's own error page (its discovery document wrong: OAuth2Error) uses nothing up either."""
    monkeypatch.setattr(views, "sso_provider_login", lambda request, pid: HttpResponse("error", status=200))
    assert Client().post(link).status_code == 200
    monkeypatch.setattr(views, "sso_provider_login", lambda request, pid: redirect(AT_THE_IDP))
    assert Client().post(link)["Location"] == AT_THE_IDP
    assert Client().post(link).status_code == 400


@pytest.mark.django_db
def test_two_browsers_at_once_do_not_both_go_on(link, monkeypatch):
    """While one browser's start is under way (fetching the discovery document), another browser
    posting the same link gets the 'can no longer be used' page; the first goes on, and after it
    no one does."""
    during = []

    def slow_start(request, pid):
        during.append(Client().post(link))  # the other browser, while this start runs
        return redirect(AT_THE_IDP)

    monkeypatch.setattr(views, "sso_provider_login", slow_start)
    first = Client().post(link)
    assert first["Location"] == AT_THE_IDP
    assert [r.status_code for r in during] == [400]
    assert "expired or can no longer be used" in during[0].content.decode()
    assert Client().post(link).status_code == 400


@pytest.mark.django_db
def test_a_start_that_fails_while_another_browser_waits_frees_the_link(link, monkeypatch):
    during = []

    def failing_start(request, pid):
        during.append(Client().post(link).status_code)
        raise RuntimeError("allauth's start failed")

    monkeypatch.setattr(views, "sso_provider_login", failing_start)
    with pytest.raises(RuntimeError):
        Client().post(link)
    assert during == [400]
    monkeypatch.setattr(views, "sso_provider_login", lambda request, pid: redirect(AT_THE_IDP))
    assert Client().post(link)["Location"] == AT_THE_IDP  # the lock went with the failed start
