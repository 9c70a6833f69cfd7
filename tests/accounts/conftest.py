from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import Client
from django_otp import devices_for_user
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import mfa, sso
from apps.accounts.middleware import LAST_SEEN
from apps.organizations.models import Role
from tests.factories import member


@pytest.fixture(autouse=True)
def _mfa_enforced(settings):
    """The sign-in gate and step-up are on here, as in every real deployment."""
    settings.LIGHTBOX_MFA_ENFORCED = True


def totp_code(device: TOTPDevice, *, ahead: int = 0) -> str:
    """The code an authenticator app shows now (``ahead`` steps later: a fresh one, since a code
    is accepted once)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift + ahead)
    return f"{totp.token():0{device.digits}d}"


def pending_device(client) -> TOTPDevice:
    """The authenticator ``client``'s enrolment page shows (its key waits in the session; nothing
    is stored before a code confirms it), as an app that scanned the QR code holds it."""
    return TOTPDevice(key=client.session[mfa.TOTP_PENDING_KEY])


def enrol(user) -> TOTPDevice:
    """A confirmed authenticator and saved recovery codes for ``user``."""
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    mfa.recovery_codes_issue(user)
    mfa.recovery_codes_confirm(user)
    return device


def stale_second_factor_client(user) -> tuple[Client, TOTPDevice]:
    """A Client signed in as ``user`` (enrolled if need be) who passed the second factor longer
    ago than the step-up window (LIGHTBOX_STEP_UP_HOURS), and that authenticator."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or enrol(user)
    client = Client()
    client.force_login(user)
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"}).status_code == 302
    session = client.session
    session[mfa.OTP_VERIFIED_AT] = time.time() - (settings.LIGHTBOX_STEP_UP_HOURS + 0.1) * 3600
    session.save()
    return client, device


@pytest.fixture
def verified_client(client_as):
    """verified_client(user) -> a Client signed in as ``user`` who passed the second factor."""

    def make(user):
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or enrol(user)
        client = client_as(user)
        response = client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"})
        assert response.status_code == 302, response.content[:500]
        return client

    return make


def sso_session(user, organization) -> Client:
    """A Client signed in as ``user`` by ``organization``'s single sign-on, as
    ``sso.session_signed_in`` leaves the session (with the second factors they have now)."""
    client = Client()
    client.force_login(user)
    session = client.session
    session[sso.OPENED_BY_KEY] = organization.pk
    session[sso.FACTORS_BEFORE_KEY] = [d.persistent_id for d in devices_for_user(user, confirmed=True)]
    session.save()
    return client


@pytest.fixture
def sam(org_a):
    """A clinician of Alpha (the SSO tests: the person whose single sign-on session is followed)."""
    return member(org_a, Role.CLINICIAN, email="sam@alpha.example")


def idle_for(client: Client, minutes: float, *, path: str = "/"):
    """``client``'s answer at ``path`` after ``minutes`` without activity: a first request there
    (as the page was used), then its last activity set back by ``minutes`` (``LAST_SEEN``), then
    the request again (the idle-limit tests)."""
    client.get(path)
    session = client.session
    session[LAST_SEEN] = time.time() - minutes * 60
    session.save()
    return client.get(path)
