"""A second factor enrolled in a session an organization's single sign-on opened is marked so
(``SSOEnrolledFactor``) and is no proof against that organization's provider
(``policy.sso_factor_counts``): its admin could have signed the person in while they reached that
organization alone and enrolled an authenticator of their own, to answer its code once the
person reaches another organization's data. Such a person signs in with their password and
enters a code (that confirms the factor), or has it reset. Recovery codes follow the same rule.

The first tests run the whole OIDC round trip against the test provider (tests/accounts/test_sso.py),
enrolling through the enrolment page as a browser does; the others open the session as the sign-in
leaves it (``sso.OPENED_BY_KEY``)."""

from __future__ import annotations

import base64
import re

import pytest
import requests
from django.test import Client, RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import mfa, services, sso
from apps.accounts.models import SSOEnrolledFactor, User
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from apps.sharing import policy
from tests.accounts.conftest import enrol, sso_session, totp_code
from tests.accounts.test_sso import _csrf, _sso_sign_in, alpha, idp  # noqa: F401  (fixtures: the test provider)
from tests.factories import TEST_PASSWORD, CaseFactory, OrganizationFactory, member

SIGNED_OUT = "You were signed out: your account now also reaches another organization"
REFUSED_SSO_FACTOR = 'data-reason="other_organizations_sso_factor"'


def _enrol_in(browser: requests.Session, base: str) -> TOTPDevice:
    """Enrol an authenticator through the enrolment page in ``browser``'s session (the key typed by
    hand into an app) and save the recovery codes; the app, as a device to read codes from."""
    page = browser.get(f"{base}/accounts/mfa/setup/")
    assert page.status_code == 200, page.url
    key = re.search(r'data-key="([A-Z2-7]+)"', page.text).group(1)
    app = TOTPDevice(key=base64.b32decode(key + "=" * (-len(key) % 8)).hex())
    done = browser.post(f"{base}/accounts/mfa/setup/", data={"code": totp_code(app), "next": "/",
                                                            "csrfmiddlewaretoken": _csrf(page.text)},
                        headers={"Referer": page.url})
    assert done.url.startswith(f"{base}/accounts/mfa/recovery-codes/"), done.url
    saved = browser.post(done.url, data={"saved": "1", "csrfmiddlewaretoken": _csrf(done.text)},
                         headers={"Referer": done.url})
    assert saved.status_code == 200, saved.url
    return app


def _password_sign_in(browser: requests.Session, base: str, email: str) -> requests.Response:
    page = browser.get(f"{base}/accounts/login/")
    return browser.post(f"{base}/accounts/login/", data={"login": email, "password": TEST_PASSWORD,
                                                         "csrfmiddlewaretoken": _csrf(page.text)},
                        headers={"Referer": page.url})


def _join_beta(user: User) -> None:
    """``user`` accepts Beta's invitation to one of its cases: they now reach Beta's data."""
    beta = OrganizationFactory(name="Beta Clinic", slug="beta")
    doctor = member(beta, Role.CLINICIAN, email="doc@beta.example")
    case = CaseFactory(organization=beta, title="Beta secret case", created_by=doctor)
    invitation, _raw = services.invitation_create(organization=beta, by=doctor, email=user.email,
                                                  role=Role.EXTERNAL_CONSULTANT, cases=[case])
    services.invitation_accept(invitation=invitation, user=user)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("alpha")
def test_an_authenticator_enrolled_through_alphas_provider_does_not_let_it_sign_sam_in_once_sam_reaches_beta(
        live_server, settings):
    """The attacker's scenario: Alpha's provider (its admin runs it) signs in Sam, of Alpha only, and
    enrols the admin's own authenticator, which is allowed then. Sam later joins Beta. Alpha's
    provider signing Sam in again is refused: that authenticator is no proof against it."""
    settings.LIGHTBOX_MFA_ENFORCED = True
    base = live_server.url
    sam = User.objects.get(email="sam@alpha.example")
    attacker = requests.Session()
    landed = _sso_sign_in(base, "sam@alpha.example", "sam", attacker, provider="org-alpha")
    assert landed.status_code == 200 and landed.url == f"{base}/", landed.url
    attackers_app = _enrol_in(attacker, base)
    device = TOTPDevice.objects.get(user=sam, confirmed=True)
    assert SSOEnrolledFactor.objects.get(totp_device=device).organization.slug == "alpha"
    assert SSOEnrolledFactor.objects.get(static_device__user=sam).organization.slug == "alpha"  # recovery codes
    enrolled = AuditEvent.objects.get(action="auth.mfa_enrolled", actor=sam, organization__slug="alpha")
    assert enrolled.details["through_sso_of"] == sam.memberships.get().organization_id

    _join_beta(sam)

    again = requests.Session()
    refused = _sso_sign_in(base, "sam@alpha.example", "sam", again, provider="org-alpha")
    assert refused.status_code == 403, refused.url
    assert REFUSED_SSO_FACTOR in refused.text and "Alpha Hospital" in refused.text
    event = AuditEvent.objects.filter(action="auth.sso_refused_other_organizations", organization__slug="beta").get()
    assert event.details["enrolled_through_sso"] is True
    # nothing of Beta's, and no code page the attacker's app could answer
    for path in ("/accounts/mfa/verify/", "/"):
        page = again.get(f"{base}{path}")
        assert page.url.startswith(f"{base}/accounts/login/"), (path, page.url)
    answered = again.post(f"{base}/accounts/mfa/verify/", data={"code": totp_code(attackers_app, ahead=1)},
                          allow_redirects=False)
    assert answered.status_code in (302, 403) and "/accounts/mfa/verify/" not in answered.headers.get("Location", "")
    assert SSOEnrolledFactor.objects.filter(totp_device=device).exists()  # still not confirmed


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("alpha")
def test_an_authenticator_enrolled_in_a_password_session_still_lets_alphas_provider_sign_sam_in(
        live_server, settings):
    settings.LIGHTBOX_MFA_ENFORCED = True
    base = live_server.url
    sam = User.objects.get(email="sam@alpha.example")
    own = requests.Session()
    assert _password_sign_in(own, base, sam.email).url == f"{base}/"
    app = _enrol_in(own, base)
    assert not SSOEnrolledFactor.objects.exists()

    _join_beta(sam)

    browser = requests.Session()
    landed = _sso_sign_in(base, "sam@alpha.example", "sam", browser, provider="org-alpha")
    assert landed.status_code == 200 and landed.url.startswith(f"{base}/accounts/mfa/verify/"), landed.url
    verified = browser.post(landed.url, data={"code": totp_code(app, ahead=1), "next": "/",
                                              "csrfmiddlewaretoken": _csrf(landed.text)},
                            headers={"Referer": landed.url})
    assert verified.url == f"{base}/" and SIGNED_OUT not in verified.text
    assert browser.get(f"{base}/cases/").status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("alpha")
def test_a_person_reaching_only_alpha_signs_in_by_its_provider_with_the_factor_enrolled_there(live_server, settings):
    settings.LIGHTBOX_MFA_ENFORCED = True
    base = live_server.url
    first = requests.Session()
    assert _sso_sign_in(base, "sam@alpha.example", "sam", first, provider="org-alpha").url == f"{base}/"
    app = _enrol_in(first, base)
    assert SSOEnrolledFactor.objects.filter(totp_device__user__email="sam@alpha.example").exists()

    browser = requests.Session()
    landed = _sso_sign_in(base, "sam@alpha.example", "sam", browser, provider="org-alpha")
    assert landed.status_code == 200 and landed.url.startswith(f"{base}/accounts/mfa/verify/"), landed.url
    assert 'data-testid="sso-enrolled"' not in landed.text  # its own provider's session: nothing to confirm
    verified = browser.post(landed.url, data={"code": totp_code(app, ahead=1), "next": "/",
                                              "csrfmiddlewaretoken": _csrf(landed.text)},
                            headers={"Referer": landed.url})
    assert verified.url == f"{base}/"
    for path in ("/cases/", "/"):
        page = browser.get(f"{base}{path}")
        assert page.status_code == 200 and page.url == f"{base}{path}" and SIGNED_OUT not in page.text
    assert not AuditEvent.objects.filter(action__in=["auth.sso_session_ended",
                                                     "auth.sso_refused_other_organizations"]).exists()


# --- the session as a single sign-on leaves it ---------------------------------------------------

def _enrolled_through(user, organization) -> TOTPDevice:
    """An authenticator and recovery codes for ``user``, enrolled in a session ``organization``'s
    single sign-on opened (``mfa.sso_enrolled_mark``, as the enrolment page marks them)."""
    request = RequestFactory().get("/")
    request.session = {sso.OPENED_BY_KEY: organization.pk}
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    mfa.sso_enrolled_mark(request, device)
    mfa.recovery_codes_issue(user, request)
    mfa.recovery_codes_confirm(user)
    return device


def _signed_out(client: Client, path: str = "/") -> bool:
    response = client.get(path, follow=True)
    return bool(response.redirect_chain) and response.redirect_chain[0][0].startswith("/accounts/login/") \
        and SIGNED_OUT in response.content.decode()


@pytest.mark.django_db
def test_the_rule_counts_no_factor_enrolled_through_that_organizations_provider(org_a, org_b, sam):
    device = _enrolled_through(sam, org_a)
    assert policy.sso_sign_in_allowed(sam, org_a)  # Alpha only: unchanged
    Membership.objects.create(user=sam, organization=org_b, role=Role.EXTERNAL_CONSULTANT)
    assert not policy.sso_sign_in_allowed(sam, org_a)  # Alpha's provider enrolled it
    assert policy.sso_sign_in_allowed(sam, org_b)  # Beta's could not have: proof against Beta's
    assert not policy.sso_factor_counts(device, org_a.pk) and policy.sso_factor_counts(device, org_b.pk)
    # a reset takes the mark with the factor; a factor enrolled again with the password counts
    services.mfa_reset(user=sam, by=sam)
    assert not SSOEnrolledFactor.objects.exists()
    enrol(sam)
    assert policy.sso_sign_in_allowed(sam, org_a)


@pytest.mark.django_db
def test_a_session_alphas_provider_opened_and_verified_with_the_factor_it_enrolled_ends_once_beta_is_reached(
        org_a, org_b, sam):
    """The factor was there before this sign-in (a code e295232 would have taken as the person's),
    but it was enrolled in an earlier session of the same provider."""
    device = _enrolled_through(sam, org_a)
    client = sso_session(sam, org_a)
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"}).status_code == 302
    assert client.get("/").status_code == 200
    assert SSOEnrolledFactor.objects.filter(totp_device=device).exists()  # its own provider's session confirms nothing
    Membership.objects.create(user=sam, organization=org_b, role=Role.CLINICIAN)
    assert _signed_out(client)
    assert AuditEvent.objects.filter(action="auth.sso_session_ended", actor=sam, organization=org_b).exists()


@pytest.mark.django_db
def test_recovery_codes_made_in_alphas_providers_session_do_not_keep_its_session(org_a, org_b, sam):
    """An authenticator enrolled with the password (it counts), recovery codes made anew in a
    session Alpha's provider opened: a session of that provider verified with one of those codes
    ends once Beta is reached; one verified with the authenticator goes on."""
    device = enrol(sam)
    request = RequestFactory().get("/")
    request.session = {sso.OPENED_BY_KEY: org_a.pk}
    codes = mfa.recovery_codes_issue(sam, request)
    mfa.recovery_codes_confirm(sam)
    assert SSOEnrolledFactor.objects.get(static_device__user=sam).organization == org_a
    Membership.objects.create(user=sam, organization=org_b, role=Role.CLINICIAN)
    assert policy.sso_sign_in_allowed(sam, org_a)  # the authenticator is proof

    with_code = sso_session(sam, org_a)
    assert with_code.post("/accounts/mfa/verify/", {"code": codes[0], "next": "/"}).status_code == 302
    assert _signed_out(with_code)

    with_app = sso_session(sam, org_a)
    assert with_app.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"}).status_code == 302
    assert with_app.get("/").status_code == 200


@pytest.mark.django_db
def test_a_code_entered_after_the_password_confirms_the_factor(org_a, org_b, sam):
    """The way on the refusal page gives: the password, then a code of the factor, which the page
    says was set up through Alpha's single sign-on. Its mark goes (recorded), and Alpha's provider
    may sign Sam in again, a code next."""
    device = _enrolled_through(sam, org_a)
    Membership.objects.create(user=sam, organization=org_b, role=Role.CLINICIAN)
    client = Client()
    client.post("/accounts/login/", {"login": sam.email, "password": TEST_PASSWORD})
    page = client.get("/accounts/mfa/verify/?next=/")
    assert 'data-testid="sso-enrolled"' in page.content.decode() and org_a.name in page.content.decode()
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"}).status_code == 302
    assert not SSOEnrolledFactor.objects.filter(totp_device=device).exists()
    assert SSOEnrolledFactor.objects.filter(static_device__user=sam).exists()  # the recovery codes: not used
    verified = AuditEvent.objects.filter(action="auth.otp_verified", actor=sam).latest("pk")
    assert verified.details["confirmed_outside_sso_of"] == org_a.pk
    assert policy.sso_sign_in_allowed(sam, org_a)
    assert 'data-testid="sso-enrolled"' not in Client().get("/accounts/login/").content.decode()
