"""Staff SSO against a real OpenID Connect provider: a second Django process (django-oauth-toolkit,
tests/oidc_idp) on 127.0.0.1, and Lightbox on pytest-django's live server. The "browser" is a
requests session that follows redirects and fills both sign-in forms."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import pytest
import requests
from django.core import mail

from apps.accounts import services
from apps.accounts.models import SSOConfig, User
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from tests.accounts.conftest import enrol
from tests.conftest import live_requests_in_flight
from tests.factories import CaseFactory, OrganizationFactory, member
from tests.servers import ROOT, clean_env, free_port, stop, wait_answering

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID, CLIENT_SECRET = "lightbox-test", "s3cret-" + "x" * 30
IDP_PASSWORD = "idp-password-1"


@pytest.fixture(scope="module")
def idp(live_server):
    """The identity provider process; yields its issuer URL."""
    port = free_port()
    db = tempfile.NamedTemporaryFile(suffix=".sqlite3", delete=False)
    db.close()
    users = ",".join([
        f"sam|{IDP_PASSWORD}|sam@alpha.example",             # staff of Alpha
        f"eve|{IDP_PASSWORD}|eve@gmail.example",             # a domain Alpha does not allow
        f"nia|{IDP_PASSWORD}|nia@alpha.example",             # allowed domain, no membership
        f"uma|{IDP_PASSWORD}|uma@alpha.example|unverified",  # the provider does not vouch for it
    ])
    env = clean_env(IDP_DB=db.name, IDP_USERS=users, PYTHONPATH=str(ROOT),
                    IDP_CLIENT=f"{CLIENT_ID}|{CLIENT_SECRET}|{live_server.url}/accounts/oidc/org-alpha/login/callback/")
    proc = subprocess.Popen([sys.executable, "-m", "tests.oidc_idp.serve", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    issuer = f"http://127.0.0.1:{port}/o"
    try:
        wait_answering(proc, f"{issuer}/.well-known/openid-configuration", timeout=60, output=proc.stdout.read)
        yield issuer
    finally:
        stop(proc)
        os.unlink(db.name)


@pytest.fixture(autouse=True)
def _links_to_the_live_server(live_server, settings):
    """The e-mailed link is made by a task, without a request: at the portal's configured address."""
    settings.LIGHTBOX_BASE_URL = live_server.url


@pytest.fixture
def alpha(idp):
    org = OrganizationFactory(name="Alpha Hospital", slug="alpha")
    admin = member(org, Role.ORG_ADMIN, email="admin@alpha.example")
    services.sso_config_save(organization=org, by=admin, issuer=idp, client_id=CLIENT_ID,
                             client_secret=CLIENT_SECRET, allowed_domains="alpha.example", enabled=True)
    member(org, Role.CLINICIAN, email="sam@alpha.example", full_name="Sam Staff")
    member(org, Role.CLINICIAN, email="uma@alpha.example")
    member(org, Role.CLINICIAN, email="eve@gmail.example")  # a member, but of a domain not allowed
    return org


def _sent_after_answer() -> None:
    """Wait until the live server has finished its requests: where tasks run eagerly, the e-mail's
    task runs once the response has been sent (``eager_after_response``, apps.core.queue)."""
    deadline = time.monotonic() + 10
    while live_requests_in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)


def _csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def _sso_sign_in(base: str, email: str, username: str, browser: requests.Session | None = None, *,
                 provider: str = "") -> requests.Response:
    """Sign in through "Sign in with your organization" with ``email``; or, with ``provider``
    (``org-<slug>``), through that provider's own sign-in address, as anyone may open it."""
    browser = browser or requests.Session()
    start_url = f"{base}/accounts/oidc/{provider}/login/"
    if not provider:  # the link "Sign in with your organization" e-mails to a staff address (apps.accounts.sso)
        sent = len(mail.outbox)
        start = browser.get(f"{base}/accounts/sso/")
        asked = browser.post(f"{base}/accounts/sso/", data={"email": email, "csrfmiddlewaretoken": _csrf(start.text)},
                             headers={"Referer": start.url})
        _sent_after_answer()
        assert asked.status_code == 200 and len(mail.outbox) == sent + 1, asked.text[:500]
        start_url = re.search(r"http\S+/accounts/sso/continue/\S+/", mail.outbox[-1].body).group(0)
    start = browser.get(start_url)
    at_idp = browser.post(start_url, data={"email": email, "csrfmiddlewaretoken": _csrf(start.text)},
                          headers={"Referer": start.url})
    assert "Test identity provider" in at_idp.text, at_idp.text[:500]
    assert at_idp.url.startswith("http://127.0.0.1:")
    next_url = re.search(r'name="next" value="([^"]*)"', at_idp.text).group(1).replace("&amp;", "&")
    return browser.post(at_idp.url, data={"username": username, "password": IDP_PASSWORD, "next": next_url,
                                          "csrfmiddlewaretoken": _csrf(at_idp.text)},
                        headers={"Referer": at_idp.url})


def test_staff_signs_in_through_the_provider_and_lands_in_their_organization(live_server, alpha):
    config = SSOConfig.objects.get(organization=alpha)
    assert CLIENT_SECRET not in config.client_secret_encrypted  # stored encrypted
    assert config.client_secret == CLIENT_SECRET

    browser = requests.Session()
    landed = _sso_sign_in(live_server.url, "sam@alpha.example", "sam", browser)
    assert landed.status_code == 200
    assert landed.url == f"{live_server.url}/"
    assert "lightbox_sso_org" in browser.cookies  # this browser offers "Continue with Alpha Hospital"
    assert "Alpha Hospital" in landed.text and "Dashboard" in landed.text
    assert AuditEvent.objects.filter(action="auth.sso_linked", organization=alpha).exists()
    assert AuditEvent.objects.filter(action="auth.signed_in", actor__email="sam@alpha.example").exists()
    # linked: the second time it goes straight through
    again = _sso_sign_in(live_server.url, "sam@alpha.example", "sam")
    assert again.url == f"{live_server.url}/" and "Alpha Hospital" in again.text


@pytest.mark.parametrize(("email", "username", "reason"), [
    ("eve@alpha.example", "eve", "domain_not_allowed"),   # the provider says eve@gmail.example
    ("nia@alpha.example", "nia", "no_membership"),        # SSO never creates an account
    ("uma@alpha.example", "uma", "email_not_verified"),
])
def test_refused_identities(live_server, alpha, email, username, reason):
    """What the provider says is checked when it comes back, however the person got there: eve and
    nia, staff of Alpha under no such address, are not sent there by "Sign in with your
    organization", but anyone may open the provider's own sign-in address."""
    if reason == "email_not_verified":
        refused = _sso_sign_in(live_server.url, email, username)
    else:
        assert _sso_not_taken(live_server.url, email)
        refused = _sso_sign_in(live_server.url, email, username, provider="org-alpha")
    assert refused.status_code == 403
    assert f'data-reason="{reason}"' in refused.text
    assert "Single sign-on refused" in refused.text
    assert AuditEvent.objects.filter(action="auth.sso_refused", details__reason=reason).exists()
    assert not AuditEvent.objects.filter(action="auth.signed_in").exists()


def _sso_not_taken(base: str, email: str) -> bool:
    """Whether "Sign in with your organization" sends ``email`` nowhere: the page every address
    gets (200), and no e-mail with a link on to a provider."""
    sent = len(mail.outbox)
    browser = requests.Session()
    start = browser.get(f"{base}/accounts/sso/")
    response = browser.post(f"{base}/accounts/sso/", data={"email": email, "csrfmiddlewaretoken": _csrf(start.text)},
                            headers={"Referer": start.url}, allow_redirects=False)
    _sent_after_answer()
    return response.status_code == 200 and 'data-testid="sso-start-sent"' in response.text and len(mail.outbox) == sent


def test_unknown_domain_gets_a_clear_message(live_server, alpha):
    assert _sso_not_taken(live_server.url, "x@nowhere.example")


def test_a_domain_another_organization_also_names_sends_its_staff_to_their_own_provider(live_server, idp):
    """A domain named by two organizations' single sign-on (made before saving refused it): the
    address goes to the provider of the organization where it is staff, never to the other's,
    where a person would type their hospital password; an address staff of neither is sent
    nowhere (and is told what every address is)."""
    from apps.accounts.crypto import encrypt

    rogue = OrganizationFactory(name="Elsewhere Clinic", slug="elsewhere", mfa_required_roles=[])
    # listed first, as the first one was taken: its provider is not the test one (nothing answers there)
    SSOConfig.objects.create(organization=rogue, issuer="http://127.0.0.1:9/o", client_id="rogue",
                             client_secret_encrypted=encrypt("rogue-secret-" + "y" * 30),
                             allowed_domains="alpha.example", enabled=True)
    org = OrganizationFactory(name="Alpha Hospital", slug="alpha")
    SSOConfig.objects.create(organization=org, issuer=idp, client_id=CLIENT_ID,
                             client_secret_encrypted=encrypt(CLIENT_SECRET), allowed_domains="alpha.example",
                             enabled=True)
    member(org, Role.CLINICIAN, email="sam@alpha.example", full_name="Sam Staff")
    member(rogue, Role.EXTERNAL_CONSULTANT, email="sam@alpha.example")  # not staff there
    enrol(User.objects.get(email="sam@alpha.example"))  # a member of two: Alpha's SSO, then the code

    landed = _sso_sign_in(live_server.url, "sam@alpha.example", "sam")  # at the test provider, then back
    assert landed.url.startswith(f"{live_server.url}/accounts/mfa/verify/")

    assert _sso_not_taken(live_server.url, "nia@alpha.example")


@pytest.fixture
def case_elsewhere(alpha):
    """Sam, staff of Alpha (whose provider is the test one), is also a clinician of Gamma, an
    organization without single sign-on that asks its clinicians for no second factor, and Sam
    has none; a case of Gamma's that Sam may open."""
    gamma = OrganizationFactory(name="Gamma Hospital", slug="gamma", mfa_required_roles=[])
    sam = User.objects.get(email="sam@alpha.example")
    Membership.objects.create(user=sam, organization=gamma, role=Role.CLINICIAN)
    return CaseFactory(organization=gamma, created_by=sam, responsible_clinician=sam)


def test_one_organizations_provider_does_not_sign_in_to_another_organization(live_server, case_elsewhere):
    """Alpha's provider vouches for Sam as far as Alpha goes: Alpha's admin runs it and can make
    it name anyone of Alpha's. What it says does not open Gamma's cases, whose admin never trusted
    it: the sign-in is refused and says how to sign in instead. With a second factor (which
    neither admin alone may reset for Sam), the provider signs Sam in and the code comes next,
    before anything of Gamma's."""
    case_page = f"{live_server.url}/cases/{case_elsewhere.public_id}/"
    browser = requests.Session()
    refused = _sso_sign_in(live_server.url, "sam@alpha.example", "sam", browser)
    assert refused.status_code == 403
    assert 'data-reason="other_organizations"' in refused.text
    assert "Sign in with your e-mail address and password" in refused.text
    assert browser.get(case_page).url.startswith(f"{live_server.url}/accounts/login/")  # not signed in
    assert AuditEvent.objects.filter(action="auth.sso_refused_other_organizations").count() == 2  # both trails
    assert not AuditEvent.objects.filter(action="auth.signed_in").exists()

    enrol(User.objects.get(email="sam@alpha.example"))
    browser = requests.Session()
    landed = _sso_sign_in(live_server.url, "sam@alpha.example", "sam", browser)
    assert landed.url.startswith(f"{live_server.url}/accounts/mfa/verify/")
    assert browser.get(case_page).url.startswith(f"{live_server.url}/accounts/mfa/verify/")
