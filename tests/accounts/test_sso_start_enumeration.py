""""Sign in with your organization" (/accounts/sso/) told anyone, without signing in and without
limit, which addresses are staff of an organization with single sign-on: theirs went on to its
identity provider (302), any other address of the domain got "No organization signs in this
address" (400) (found by a reviewer). Every address now gets the same page; a staff address is
e-mailed the link on to its organization's provider (apps.accounts.sso), after the request, and
tries are counted per client and per address (apps.accounts.brute_force.sso_start_claim)."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client, TestCase

from apps.accounts.models import SSOConfig
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db

START = "/accounts/sso/"


@pytest.fixture
def alpha_sso(org_a, admin_a):
    member(org_a, Role.CLINICIAN, email="sam@alpha.example")
    member(org_a, Role.PATIENT, email="pat@alpha.example")  # a member, but not staff: no single sign-on
    return SSOConfig.objects.create(organization=org_a, issuer="https://login.alpha.example/o", client_id="lightbox",
                                    allowed_domains="alpha.example", enabled=True)


def _start(email: str, client: Client | None = None, ip: str = "203.0.113.7"):
    with TestCase.captureOnCommitCallbacks(execute=True):  # the e-mail: a task queued after the request
        return (client or Client()).post(START, {"email": email}, REMOTE_ADDR=ip)


def _page_text(response) -> str:
    """The page as a person reads it, without the typed address and the per-response tokens."""
    text = response.content.decode()
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", text)
    text = re.sub(r'nonce="[^"]*"', "", text)
    return re.sub(r"[a-z]+@alpha\.example", "ADDRESS", text)


def test_a_staff_address_and_any_other_get_the_same_answer(alpha_sso):
    answers = {email: _start(email, ip=f"203.0.113.{n}") for n, email in enumerate(
        ["sam@alpha.example", "nobody@alpha.example", "pat@alpha.example", "x@nowhere.example"], start=1)}
    assert {r.status_code for r in answers.values()} == {200}
    pages = {_page_text(r).replace("x@nowhere.example", "ADDRESS") for r in answers.values()}
    assert len(pages) == 1, "the page differs between addresses"
    assert "No organization signs in this address" not in pages.pop()
    # only the staff address is written to, with its organization's link
    assert [m.to for m in mail.outbox] == [["sam@alpha.example"]]
    assert "Alpha Hospital" in mail.outbox[0].subject


def test_the_e_mailed_link_leads_on_to_the_organizations_sign_in(alpha_sso, monkeypatch):
    from apps.accounts import views

    _start("sam@alpha.example")
    link = re.search(r"https?://\S+/accounts/sso/continue/\S+/", mail.outbox[0].body).group(0)
    client = Client()
    page = client.get(link)
    assert page.status_code == 200 and "Continue to Alpha Hospital" in page.content.decode()
    started = []
    monkeypatch.setattr(views, "sso_provider_login",
                        lambda request, provider_id: started.append(provider_id) or views.redirect("/at-the-idp/"))
    assert client.post(link)["Location"] == "/at-the-idp/" and started == [alpha_sso.provider_id]
    # an altered link, or one whose address is no longer the organization's staff, leads nowhere
    assert client.post(link[:-3] + "x/").status_code == 400 and started == [alpha_sso.provider_id]
    _start("sam@alpha.example")
    link = re.search(r"https?://\S+/accounts/sso/continue/\S+/", mail.outbox[-1].body).group(0)
    SSOConfig.objects.filter(pk=alpha_sso.pk).update(enabled=False)
    refused = client.post(link)
    assert refused.status_code == 400 and "expired or can no longer be used" in refused.content.decode()
    assert started == [alpha_sso.provider_id]


def test_too_many_tries_from_one_client_are_refused_and_recorded(alpha_sso, settings):
    settings.LIGHTBOX_SSO_START_CLIENT_MAX_TRIES = 3
    for n in range(3):
        assert _start(f"guess{n}@alpha.example").status_code == 200
    refused = _start("sam@alpha.example")
    assert refused.status_code == 429
    assert "Too many tries. Wait 15 minutes, then try again." in refused.content.decode()
    assert mail.outbox == []  # the staff address found by the fourth guess is not written to
    assert _start("sam@alpha.example", ip="198.51.100.9").status_code == 200  # another client is not held up
    event = AuditEvent.objects.get(action="auth.locked_out")
    assert event.outcome == "denied" and event.details == {"failures": 3, "factor": "sso_start", "by": "client"}
    _start("other@alpha.example")  # refused again: recorded once
    assert AuditEvent.objects.filter(action="auth.locked_out").count() == 1


def test_a_mail_server_that_fails_changes_nothing_of_the_answer(alpha_sso, monkeypatch):
    """The e-mail goes to a staff address only: its failure must not answer that address otherwise."""
    from django.core.mail import EmailMultiAlternatives

    def refuse(self, *args, **kwargs):
        raise OSError("mail server down")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    staff, other = _start("sam@alpha.example", ip="203.0.113.1"), _start("nobody@alpha.example", ip="203.0.113.2")
    assert staff.status_code == other.status_code == 200 and _page_text(staff) == _page_text(other)
