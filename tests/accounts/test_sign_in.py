"""Passwords: lockout after repeated failures, org switch to SSO-only for staff; sessions: idle
timeout (shorter for outsiders), all ended on password or MFA reset."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from apps.accounts import services
from apps.accounts.middleware import LAST_SEEN
from apps.accounts.models import SSOConfig
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.accounts.conftest import enrol
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db


def _sign_in(client, email, password=TEST_PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


def test_lockout_after_repeated_wrong_passwords(settings, clinician_a):
    client = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _sign_in(client, clinician_a.email, "wrong-password-123")
        assert response.status_code == 200, attempt  # the form again, with an error
    locked = _sign_in(client, clinician_a.email, "wrong-password-123")
    assert locked.status_code == 429 and b"Sign-in locked" in locked.content
    # the right password does not get in while locked, from another browser too
    other = Client()
    response = _sign_in(other, clinician_a.email)
    assert response.status_code == 429
    assert other.get("/").status_code == 302
    events = AuditEvent.objects.filter(action="auth.locked_out")
    assert events.exists()
    assert all(e.outcome == "denied" and e.target_id == str(clinician_a.public_id) for e in events)
    # another account is not locked
    assert _sign_in(Client(), member(clinician_a.memberships.first().organization).email).status_code == 302


def test_org_can_require_sso_for_staff(org_a, admin_a, clinician_a):
    assert _sign_in(Client(), clinician_a.email).status_code == 302
    SSOConfig.objects.create(organization=org_a, issuer="https://idp.example", client_id="x",
                             allowed_domains="alpha.example")
    org_a.password_login_allowed = False
    org_a.save()
    response = _sign_in(Client(), clinician_a.email)
    assert response.status_code == 200 and b"single sign-on" in response.content
    assert AuditEvent.objects.filter(action="auth.password_login_refused").exists()
    # org admins keep their password (and their required second factor): SSO cannot lock them out
    assert _sign_in(Client(), admin_a.email).status_code == 302
    # consultants are not staff: they keep password + TOTP
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    assert _sign_in(Client(), consultant.email).status_code == 302


def test_idle_timeout_is_shorter_for_external_users(org_a, clinician_a, client_as):
    org_a.staff_idle_minutes, org_a.external_idle_minutes = 60, 15
    org_a.save()
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    enrol(consultant)

    def idle(client, minutes):
        session = client.session
        session[LAST_SEEN] = time.time() - minutes * 60
        session.save()

    staff = client_as(clinician_a)
    staff.get("/")
    idle(staff, 20)
    assert staff.get("/").status_code == 200  # 20 minutes: fine for staff

    outsider = client_as(consultant)
    outsider.get("/accounts/mfa/verify/")
    idle(outsider, 20)
    response = outsider.get("/sharing/received/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert outsider.get("/sharing/received/")["Location"].startswith("/accounts/login/")  # signed out
    assert AuditEvent.objects.filter(action="auth.idle_timeout", actor=consultant).exists()

    idle(staff, 61)
    assert staff.get("/")["Location"].startswith("/accounts/login/")


def test_activity_on_an_open_page_keeps_the_session_and_tells_the_page_when_it_ended(org_a, clinician_a, client_as):
    """static/js/activity.js posts to /accounts/activity/ after typing: that counts as activity;
    a session already past its limit is signed out there as anywhere (the page then says so)."""
    org_a.staff_idle_minutes = 30
    org_a.save()
    client = client_as(clinician_a)
    page = client.get("/").content.decode()
    assert 'data-idle-seconds="1800"' in page and 'data-activity-url="/accounts/activity/"' in page
    assert "js/activity.js" in page and 'id="idle-notice"' in page
    assert client.get("/accounts/activity/").status_code == 405  # POST only

    session = client.session
    session[LAST_SEEN] = time.time() - 25 * 60  # 25 of 30 minutes without a request
    session.save()
    assert client.post("/accounts/activity/").status_code == 204
    assert time.time() - client.session[LAST_SEEN] < 5  # the clock starts again
    session = client.session
    session[LAST_SEEN] = time.time() - 31 * 60
    session.save()
    response = client.post("/accounts/activity/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert AuditEvent.objects.filter(action="auth.idle_timeout", actor=clinician_a).exists()
    # signed out pages carry no idle clock
    assert "data-idle-seconds" not in Client().get("/accounts/login/").content.decode()


def test_password_change_and_mfa_reset_end_every_session(org_a, admin_a, clinician_a, client_as):
    first, second = client_as(clinician_a), client_as(clinician_a)
    assert first.get("/").status_code == 200 and second.get("/").status_code == 200
    clinician_a.set_password("another-long-passphrase-7")
    clinician_a.save()
    assert first.get("/").status_code == 302 and second.get("/").status_code == 302

    enrol(clinician_a)
    a, b = Client(), Client()
    for c in (a, b):
        c.force_login(clinician_a)
    services.mfa_reset(user=clinician_a, by=admin_a)
    for c in (a, b):
        assert c.get("/")["Location"].startswith("/accounts/login/")
    clinician_a.refresh_from_db()
    fresh = client_as(clinician_a)
    assert fresh.get("/").status_code == 200  # no device left: a clinician is not asked for one
    assert AuditEvent.objects.filter(action="auth.sessions_ended", target_id=str(clinician_a.public_id)).exists()


def test_only_an_admin_of_the_users_org_resets_their_mfa(org_a, org_b, admin_b, clinician_a):
    enrol(clinician_a)
    with pytest.raises(Exception):  # noqa: B017 - PermissionDenied
        services.mfa_reset(user=clinician_a, by=admin_b)


def test_identity_policy_on_the_settings_form(org_a, admin_a, verified_client):
    from django.urls import reverse

    from apps.accounts.models import SSOConfig

    client = verified_client(admin_a)
    page = client.get(reverse("organizations:settings"))
    for name in ("password_login_allowed", "mfa_required_roles", "staff_idle_minutes", "external_idle_minutes"):
        assert f'name="{name}"'.encode() in page.content
    base = {"upload_max_bytes_number": "5", "upload_max_bytes_unit": "GB", "invitation_ttl_hours": 72,
            "staff_idle_minutes": 30,
            "external_idle_minutes": 10, "mfa_required_roles": [Role.ORG_ADMIN, Role.CLINICIAN]}
    # password sign-in cannot be turned off before SSO is set up
    refused = client.post(reverse("organizations:settings"), base)
    assert refused.status_code == 400 and b"Set up single sign-on first" in refused.content
    SSOConfig.objects.create(organization=org_a, issuer="https://idp.example", client_id="x",
                             allowed_domains="alpha.example")
    assert client.post(reverse("organizations:settings"), base).status_code == 302
    org_a.refresh_from_db()
    assert org_a.password_login_allowed is False
    assert (org_a.staff_idle_minutes, org_a.external_idle_minutes) == (30, 10)
    # external consultants always need a second factor, even when unticked
    assert sorted(org_a.mfa_required_roles) == sorted([Role.CLINICIAN, Role.EXTERNAL_CONSULTANT, Role.ORG_ADMIN])


def test_org_admin_sets_up_sso_with_the_secret_stored_encrypted(org_a, admin_a, clinician_a, verified_client,
                                                                client_as):
    from django.db import connection

    from apps.accounts.models import SSOConfig

    assert client_as(clinician_a).get("/org/sso/").status_code == 403  # org admins only
    # staff at both domains named, who have signed in (an account the organization made that has
    # never signed in does not count: tests/accounts/test_sso_several_organizations.py)
    client_as(member(org_a, Role.RADIOLOGIST, email="reader@rad.alpha.example"))
    client = verified_client(admin_a)
    data = {"enabled": "on", "issuer": "https://login.alpha.example/realms/staff", "client_id": "lightbox",
            "client_secret": "very-secret-client-secret-42", "allowed_domains": "alpha.example, rad.alpha.example"}
    assert client.post("/org/sso/", data).status_code == 302
    config = SSOConfig.objects.get(organization=org_a)
    assert config.client_secret == "very-secret-client-secret-42"
    assert config.domains == ["alpha.example", "rad.alpha.example"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret_encrypted FROM accounts_ssoconfig")
        stored = cursor.fetchone()[0]
    assert "very-secret" not in stored and len(stored) > 60
    page = client.get("/org/sso/")
    assert b"very-secret" not in page.content and b"/accounts/oidc/org-alpha/login/callback/" in page.content
    # saving without a secret keeps the stored one
    assert client.post("/org/sso/", {**data, "client_secret": ""}).status_code == 302
    config.refresh_from_db()
    assert config.client_secret == "very-secret-client-secret-42"
    assert AuditEvent.objects.filter(action="organization.sso_changed", organization=org_a).count() == 2


def test_an_organizations_single_sign_on_takes_only_its_own_staffs_domains(org_a, org_b, admin_a, admin_b,
                                                                           verified_client):
    """"Sign in with your organization" sends an address to the provider of the organization where
    it is staff. Beta's admin naming Alpha's domain for a provider of their own is refused (no
    staff of Beta's has an address there), and Alpha, once its own staff use a domain, names it
    whatever another organization's settings say."""
    from apps.accounts.models import SSOConfig

    alpha = {"enabled": "on", "issuer": "https://login.alpha.example", "client_id": "lightbox",
             "client_secret": "alpha-client-secret-0123456789", "allowed_domains": "alpha.example"}
    client_a = verified_client(admin_a)
    assert client_a.post("/org/sso/", alpha).status_code == 302
    beta = verified_client(admin_b)
    response = beta.post("/org/sso/", {**alpha, "issuer": "https://idp.beta.example",
                                       "allowed_domains": "beta.example, ALPHA.example"})
    assert response.status_code == 400
    assert ("No active staff member of this organization has signed in with an address at alpha.example"
            in response.content.decode())
    assert not SSOConfig.objects.filter(organization=org_b).exists()
    assert beta.post("/org/sso/", {**alpha, "issuer": "https://idp.beta.example",
                                   "allowed_domains": "beta.example"}).status_code == 302
    # Alpha saving its own settings again is not refused by its own domains
    assert client_a.post("/org/sso/", {**alpha, "client_secret": ""}).status_code == 302
    assert [c.organization for c in SSOConfig.objects.all() if c.allows_email("sam@alpha.example")] == [org_a]


def test_nobody_makes_another_address_their_own(org_a, clinician_a, admin_a, client_as):
    """allauth's e-mail page, with no verification, let anyone signed in take an address no
    account had yet: a share to a user with that address (looked up by it) then went to them."""
    from allauth.account.models import EmailAddress

    from apps.accounts.models import User

    client = client_as(clinician_a)
    assert client.get("/accounts/email/").status_code == 404
    for action in ("action_add", "action_primary"):
        assert client.post("/accounts/email/", {action: "", "email": "dr.smith@hospital-c.example"}).status_code == 404
    clinician_a.refresh_from_db()
    assert clinician_a.email == "clinician@alpha.example"
    assert not EmailAddress.objects.filter(email="dr.smith@hospital-c.example").exists()
    assert not User.objects.filter(email="dr.smith@hospital-c.example").exists()


def test_single_sign_on_settings_need_a_recent_second_factor(org_a, admin_a):
    """The provider named here signs in the organization's staff: changing it is at least as
    sensitive as adding a member (which asks for a recent code). A session whose last code is
    older than the step-up window is sent to enter one, and nothing changes."""
    from django.urls import reverse

    from tests.accounts.conftest import stale_second_factor_client

    client, _device = stale_second_factor_client(admin_a)
    response = client.post("/org/sso/", {"enabled": "on", "issuer": "https://idp.elsewhere.example",
                                         "client_id": "x", "client_secret": "a-long-client-secret-0123456789",
                                         "allowed_domains": "alpha.example"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:step_up"))
    assert not SSOConfig.objects.filter(organization=org_a).exists()
    assert client.get("/org/sso/")["Location"].startswith(reverse("accounts:step_up"))
