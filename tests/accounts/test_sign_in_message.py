"""Signing in with a password: "Successfully signed in" only when the password is all it takes;
not above the page that still asks a second factor for the code."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.organizations.models import Role
from tests.accounts.conftest import enrol
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db

SIGNED_IN = "Successfully signed in"


def _sign_in(user) -> str:
    client = Client()
    response = client.post("/accounts/login/", {"login": user.email, "password": TEST_PASSWORD}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_no_signed_in_message_above_the_second_factor_code(org_a):
    user = member(org_a, Role.EXTERNAL_CONSULTANT, email="two.steps@alpha.example")
    enrol(user)
    page = _sign_in(user)
    assert "/accounts/mfa/verify/" in page or 'name="code"' in page
    assert SIGNED_IN not in page


def test_the_signed_in_message_when_a_password_is_all_it_takes(org_a):
    org_a.mfa_required_roles = []
    org_a.save(update_fields=["mfa_required_roles"])
    user = member(org_a, Role.CLINICIAN, email="one.step@alpha.example")
    assert SIGNED_IN in _sign_in(user)
