"""One organization's single sign-on does not open another organization's data.

An organization's provider vouches for its staff, and its admin runs it: they can make it name
anyone of theirs. A person who also works for another organization is signed in by it only when
a second factor (which the provider cannot give, and which no one organization's admin may reset
for them) is asked next; otherwise the sign-in is refused, recorded in each of their
organizations' trails, and they sign in with their password and a second factor. The whole OIDC
round trip, and the other organization's case page, are in tests/accounts/test_sso.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from allauth.core.exceptions import ImmediateHttpResponse
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory

from apps.accounts.adapters import SocialAccountAdapter, password_login_refused
from apps.accounts.models import SSOConfig
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from apps.sharing import policy
from tests.accounts.conftest import enrol
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def sso_b(org_b):
    """Beta signs its staff in through its own provider, and only so."""
    SSOConfig.objects.create(organization=org_b, issuer="https://idp.beta.example", client_id="x",
                             allowed_domains="beta.example", enabled=True)
    org_b.password_login_allowed = False
    org_b.save()
    return org_b


@pytest.fixture
def in_both(org_a, org_b, sso_b):
    """A clinician of Beta who is also a clinician of Alpha, which asks its clinicians for no
    second factor; no authenticator."""
    person = member(org_b, Role.CLINICIAN, email="dual@beta.example")
    Membership.objects.create(user=person, organization=org_a, role=Role.CLINICIAN)
    return person


def _sso_login(org, email: str, *, linked_to=None):
    """What allauth hands the adapter after ``org``'s provider's callback, the provider vouching
    for ``email``: (the response when refused or None, the request). ``linked_to``: the account
    the provider's subject is already linked to (else a first sign-in, which would link it)."""
    request = RequestFactory().get(f"/accounts/oidc/org-{org.slug}/login/callback/")
    request.session = SessionStore()
    saved = []
    login = SimpleNamespace(provider=SimpleNamespace(app=SimpleNamespace(provider_id=f"org-{org.slug}")),
                            email_addresses=[SimpleNamespace(email=email, verified=True)],
                            is_existing=linked_to is not None, user=linked_to,
                            save=lambda request, connect: saved.append(connect))
    try:
        SocialAccountAdapter().pre_social_login(request, login)
    except ImmediateHttpResponse as refused:
        assert not saved  # nothing linked
        return refused.response, request
    return None, request


def test_the_policy_table(org_a, org_b, sso_b, in_both, settings):
    settings.LIGHTBOX_MFA_ENFORCED = True
    solo = member(org_b, Role.CLINICIAN, email="solo@beta.example")
    assert policy.sso_sign_in_allowed(solo, org_b)
    assert not policy.sso_sign_in_allowed(in_both, org_b)  # Alpha's data on Beta's provider's word
    assert not policy.sso_sign_in_allowed(in_both, org_a)  # and the other way round
    # a second factor the gate asks for next: the provider's word alone opens nothing
    enrol(in_both)
    assert policy.sso_sign_in_allowed(in_both, org_b)
    settings.LIGHTBOX_MFA_ENFORCED = False  # nothing would ask for it
    assert not policy.sso_sign_in_allowed(in_both, org_b)
    settings.LIGHTBOX_MFA_ENFORCED = True
    # a membership that ended elsewhere leaves the person to Beta alone
    enrolled_not = member(org_b, Role.CLINICIAN, email="left@beta.example")
    Membership.objects.create(user=enrolled_not, organization=org_a, role=Role.CLINICIAN, is_active=False)
    assert policy.sso_sign_in_allowed(enrolled_not, org_b)
    # a patient or a consultant elsewhere is elsewhere too
    consultant_elsewhere = member(org_b, Role.CLINICIAN, email="consults@beta.example")
    Membership.objects.create(user=consultant_elsewhere, organization=org_a, role=Role.EXTERNAL_CONSULTANT)
    assert not policy.sso_sign_in_allowed(consultant_elsewhere, org_b)
    solo.is_active = False
    solo.save()
    assert not policy.sso_sign_in_allowed(solo, org_b)


@pytest.mark.parametrize("linked", [False, True], ids=["first sign-in", "already linked"])
def test_another_organizations_member_is_refused_and_both_trails_say_so(org_a, org_b, sso_b, in_both, linked):
    response, request = _sso_login(org_b, in_both.email, linked_to=in_both if linked else None)
    assert response is not None and response.status_code == 403
    page = response.content.decode()
    assert 'data-reason="other_organizations"' in page
    assert "also a member of another organization" in page and "second factor" in page
    assert "lightbox_active_org" not in request.session
    events = AuditEvent.objects.filter(action="auth.sso_refused_other_organizations")
    assert sorted(events.values_list("organization__slug", "outcome", "target_id", "actor_type")) == [
        (slug, "denied", str(in_both.public_id), "anonymous") for slug in ("alpha", "beta")]
    assert all(e.details == {"reason": "other_organizations", "provider": "org-beta"} for e in events)
    assert not AuditEvent.objects.filter(action="auth.sso_linked").exists()


def test_staff_of_the_one_organization_and_an_enrolled_member_of_two_are_signed_in(org_b, sso_b, in_both):
    solo = member(org_b, Role.CLINICIAN, email="solo@beta.example")
    assert _sso_login(org_b, solo.email, linked_to=solo)[0] is None
    enrol(in_both)  # the access gate asks for its code before anything (tests/accounts/test_sso.py)
    response, request = _sso_login(org_b, in_both.email, linked_to=in_both)
    assert response is None and request.session["lightbox_active_org"] == str(org_b.public_id)
    assert not AuditEvent.objects.filter(action="auth.sso_refused_other_organizations").exists()


def _password_sign_in(email: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"login": email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return client


def test_whom_the_sso_refuses_signs_in_with_a_password_and_must_set_up_a_second_factor(org_a, org_b, sso_b,
                                                                                    in_both):
    """Beta turned password sign-in off for its staff, but Beta's provider cannot sign this
    person in: the password is their way in, and a second factor stands in for the provider
    (they would be locked out otherwise, or in on a password where Beta wanted its provider)."""
    assert not password_login_refused(in_both)
    client = _password_sign_in(in_both.email)
    assert client.get("/")["Location"].startswith("/accounts/mfa/setup/")
    # once enrolled, Beta's provider signs them in (with the code next); the password stays theirs
    # while they are staff of Alpha, which lets its staff sign in with one (with that second factor)
    enrol(in_both)
    assert policy.sso_sign_in_allowed(in_both, org_b)
    assert not password_login_refused(in_both)
    org_a.password_login_allowed = False  # Alpha, with no single sign-on, turns it off too: Beta's is the way
    org_a.save()
    assert password_login_refused(in_both)
    # Beta's staff of Beta alone: as before, its provider only
    assert password_login_refused(member(org_b, Role.CLINICIAN, email="solo@beta.example"))


def test_a_member_of_two_organizations_that_both_allow_passwords_is_not_made_to_enrol(org_a, org_b, in_both):
    org_b.password_login_allowed = True
    org_b.save()
    client = _password_sign_in(in_both.email)
    assert client.get("/").status_code == 200


def test_a_share_from_another_organization_counts_as_reaching_it(org_a, org_b, sso_b, clinician_a, settings):
    """Beta's staff member holds no membership elsewhere but a share of Alpha's case: Beta's
    provider alone would open that case, so it is refused as for a member of Alpha, and the
    password with a second factor is the way in. A revoked or expired share reaches nothing."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.sharing import services as sharing
    from apps.sharing.models import Grant
    from tests.factories import CaseFactory

    settings.LIGHTBOX_MFA_ENFORCED = True
    person = member(org_b, Role.CLINICIAN, email="shared@beta.example")
    assert policy.sso_sign_in_allowed(person, org_b)
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    grant = sharing.grant_create(case=case, grantee=person, by=clinician_a, permissions=["view"],
                                 expires_at=timezone.now() + timedelta(hours=2))
    assert not policy.sso_sign_in_allowed(person, org_b)
    response, _request = _sso_login(org_b, person.email, linked_to=person)
    assert response is not None and response.status_code == 403
    assert not password_login_refused(person)
    assert _password_sign_in(person.email).get("/")["Location"].startswith("/accounts/mfa/setup/")
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert policy.sso_sign_in_allowed(person, org_b)
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + timedelta(hours=1),
                                             revoked_at=timezone.now())
    assert policy.sso_sign_in_allowed(person, org_b)


def test_a_share_sent_to_the_address_and_not_opened_yet_counts_too(org_a, org_b, sso_b, clinician_a, settings):
    """A review: a share of Alpha's case sent to a Beta-only person's address, not opened yet,
    is theirs the moment its link is opened: Beta's provider alone does not sign them in."""
    from apps.sharing import services as sharing
    from apps.sharing.models import Grant
    from tests.factories import CaseFactory

    settings.LIGHTBOX_MFA_ENFORCED = True
    person = member(org_b, Role.CLINICIAN, email="mailed@beta.example")
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    sharing.share_create(case=case, by=clinician_a, use_case="second_opinion", recipient_kind="email",
                         grantee_email="Mailed@beta.example")
    assert Grant.objects.get(case=case).grantee is None
    assert not policy.sso_sign_in_allowed(person, org_b)
