"""A session an organization's single sign-on opened lasts only while that provider could still sign
the person in (``policy.sso_sign_in_allowed``): once they reach another organization's data (its
invitation accepted, a case it shared with them), the session is signed out on its next request,
recorded, and the sign-in page says how to sign in instead; it never enrols a first second factor
(the provider's admin would enrol one of their choosing, then answer for it at every sign-in).
A session verified with a second factor the person had before that sign-in goes on.

The first tests run the whole OIDC round trip against the test provider (tests/accounts/test_sso.py);
the others open the session as the sign-in leaves it (``sso.OPENED_BY_KEY``)."""

from __future__ import annotations

from unittest import mock

import pytest
import requests
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import mfa, services, sso
from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from tests.accounts.conftest import enrol, sso_session, totp_code
from tests.accounts.test_sso import _sso_sign_in, alpha, idp  # noqa: F401  (fixtures: the test provider)
from tests.factories import TEST_PASSWORD, CaseFactory, GrantFactory, OrganizationFactory, member

SIGNED_OUT = "You were signed out: your account now also reaches another organization"


def _beta_case():
    beta = OrganizationFactory(name="Beta Clinic", slug="beta")
    doctor = member(beta, Role.CLINICIAN, email="doc@beta.example")
    return beta, doctor, CaseFactory(organization=beta, title="Beta secret case", created_by=doctor)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("alpha")
def test_the_session_alphas_provider_opened_ends_once_the_person_joins_beta(live_server):
    """The reviewer's scenario: Alpha's provider (its admin runs it) signs in Sam, of Alpha only.
    Sam then accepts Beta's invitation to a case. The session Alpha's provider opened is signed
    out at its next request, rather than sent to enrol an authenticator and on to Beta's case."""
    base = live_server.url
    sam = User.objects.get(email="sam@alpha.example")
    session = requests.Session()
    landed = _sso_sign_in(base, "sam@alpha.example", "sam", session, provider="org-alpha")
    assert landed.status_code == 200 and landed.url == f"{base}/", landed.url

    beta, doctor, case = _beta_case()
    invitation, _raw = services.invitation_create(organization=beta, by=doctor, email=sam.email,
                                                  role=Role.EXTERNAL_CONSULTANT, cases=[case])
    services.invitation_accept(invitation=invitation, user=sam)

    page = session.get(f"{base}/cases/{case.public_id}/")
    assert page.url.startswith(f"{base}/accounts/login/"), page.url
    assert SIGNED_OUT in page.text
    assert "Beta secret case" not in page.text
    event = AuditEvent.objects.get(action="auth.sso_session_ended", organization=beta)
    assert event.actor == sam and event.outcome == "denied" and event.details["during"] == "request"
    assert AuditEvent.objects.filter(action="auth.sso_session_ended", organization__slug="alpha").exists()
    # signed out: no enrolment page, no case, however it is asked for
    for path in ("/accounts/mfa/setup/", f"/cases/{case.public_id}/", "/"):
        again = session.get(f"{base}{path}")
        assert again.url.startswith(f"{base}/accounts/login/"), (path, again.url)
        assert "Beta secret case" not in again.text and 'data-key="' not in again.text
    assert not TOTPDevice.objects.filter(user=sam).exists()
    # and a new sign-in by Alpha's provider is refused (as before)
    refused = _sso_sign_in(base, "sam@alpha.example", "sam", requests.Session(), provider="org-alpha")
    assert refused.status_code == 403


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("alpha")
def test_a_person_reaching_only_alpha_keeps_the_session_its_provider_opened(live_server):
    base = live_server.url
    session = requests.Session()
    landed = _sso_sign_in(base, "sam@alpha.example", "sam", session, provider="org-alpha")
    assert landed.status_code == 200 and landed.url == f"{base}/"
    OrganizationFactory(name="Beta Clinic", slug="beta")  # another organization, nothing of it theirs
    for path in ("/", "/cases/", "/"):
        page = session.get(f"{base}{path}")
        assert page.status_code == 200 and page.url == f"{base}{path}", (path, page.url)
        assert SIGNED_OUT not in page.text
    assert not AuditEvent.objects.filter(action="auth.sso_session_ended").exists()


# --- the session as a single sign-on leaves it ---------------------------------------------------

def _signed_out(client: Client, path: str = "/") -> bool:
    response = client.get(path, follow=True)
    return response.redirect_chain[0][0].startswith("/accounts/login/") and SIGNED_OUT in response.content.decode()


@pytest.mark.django_db
def test_a_case_shared_by_another_organization_ends_the_session(org_a, org_b, sam):
    client = sso_session(sam, org_a)
    assert client.get("/").status_code == 200
    GrantFactory(organization=org_b, grantee=sam)
    assert _signed_out(client)
    assert client.get("/").status_code == 302  # signed out for good
    assert AuditEvent.objects.filter(action="auth.sso_session_ended", actor=sam).exists()


@pytest.mark.django_db
def test_a_password_session_is_not_the_providers(org_a, org_b, sam):
    """A sign-in other than by a single sign-on in a session one opened (the same person, the same
    browser: Django keeps the session's data) takes the provider's mark out of it: it lasts as
    any password session does. (allauth's sign-in page sends a signed-in person on; the test
    client signs in as a sign-in view does, in the client's session.)"""
    client = sso_session(sam, org_a)
    client.force_login(sam)
    assert sso.OPENED_BY_KEY not in client.session and sso.FACTORS_BEFORE_KEY not in client.session
    Membership.objects.create(user=sam, organization=org_b, role=Role.CLINICIAN)
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_first_enrolment_is_refused_in_a_providers_session_once_other_organizations_are_reached(
        org_a, org_b, sam):
    """Even were the gate to let the request through, the enrolment page itself refuses: the
    session ends and the person signs in with their password to enrol."""
    client = sso_session(sam, org_a)
    assert client.get("/accounts/mfa/setup/").status_code == 200  # Alpha only: theirs to enrol
    Membership.objects.create(user=sam, organization=org_b, role=Role.EXTERNAL_CONSULTANT)
    with mock.patch("apps.accounts.middleware.sso", mock.Mock(session_outlived=lambda *args: False)):
        response = client.get("/accounts/mfa/setup/?next=/cases/", follow=True)
    assert response.redirect_chain[0][0].startswith("/accounts/login/")
    assert SIGNED_OUT in response.content.decode()
    assert not TOTPDevice.objects.filter(user=sam).exists()
    event = AuditEvent.objects.get(action="auth.sso_session_ended", organization=org_b)
    assert event.details["during"] == "enrolment"
    # the enrolment through a password's session goes on
    password = Client()
    password.post("/accounts/login/", {"login": sam.email, "password": TEST_PASSWORD})
    assert password.get("/accounts/mfa/setup/").status_code == 200


@pytest.mark.django_db
def test_a_session_verified_with_a_factor_from_before_the_sign_in_goes_on(org_a, org_b, sam, settings):
    """Where nothing asks for the second factor (LIGHTBOX_MFA_ENFORCED off), the provider could
    not sign in a person of two organizations, second factor or not; a session verified with one
    they had before the sign-in is theirs and goes on, not one verified with a factor enrolled
    in it after."""
    settings.LIGHTBOX_MFA_ENFORCED = False
    device = enrol(sam)
    before = sso_session(sam, org_a)
    assert before.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"}).status_code == 302
    Membership.objects.create(user=sam, organization=org_b, role=Role.CLINICIAN)
    assert before.get("/").status_code == 200

    other = member(org_a, Role.CLINICIAN, email="kim@alpha.example")
    after = sso_session(other, org_a)  # no factor at the sign-in; one enrolled in the session
    late = enrol(other)
    assert after.post("/accounts/mfa/verify/", {"code": totp_code(late), "next": "/"}).status_code == 302
    Membership.objects.create(user=other, organization=org_b, role=Role.CLINICIAN)
    assert _signed_out(after)


@pytest.mark.django_db
def test_with_the_gate_on_a_factor_confirmed_since_is_asked_for_not_skipped(org_a, org_b, sam):
    """With the second factor asked for (the deployments' setting), a person of two organizations
    with an authenticator is one the provider may sign in, a code next: a factor they confirmed
    since (their password's session) keeps the session, which must enter its code."""
    client = sso_session(sam, org_a)
    Membership.objects.create(user=sam, organization=org_b, role=Role.CLINICIAN)
    enrol(sam)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/mfa/verify/")
    assert not AuditEvent.objects.filter(action="auth.sso_session_ended").exists()
    assert mfa.has_second_factor(sam)
