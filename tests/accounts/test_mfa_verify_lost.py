"""The code page after the password says whom to ask when both the phone and the recovery codes
are lost: the admins of the one organization that can reset it, by name (an external consultant's
organization is the hospital that invited them, not their own), or the operator for a person of
several organizations. It only offered a recovery code."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.organizations.models import Role
from tests.accounts.conftest import enrol
from tests.factories import TEST_PASSWORD, MembershipFactory, member

pytestmark = pytest.mark.django_db


def _code_page(user) -> str:
    client = Client()
    response = client.post("/accounts/login/", {"login": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    page = client.get("/accounts/mfa/verify/")
    assert page.status_code == 200
    return page.content.decode()


def test_a_consultant_is_told_which_organization_resets_their_second_factor(org_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="dana@consult.example")
    enrol(consultant)
    page = _code_page(consultant)
    assert 'data-testid="no-codes-left"' in page
    assert "Ask an admin of Alpha Hospital to reset your second factor" in page


def test_a_person_of_two_organizations_is_sent_to_the_operator(org_a, org_b):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="dana@consult.example")
    MembershipFactory(organization=org_b, user=consultant, role=Role.RADIOLOGIST)
    enrol(consultant)
    page = _code_page(consultant)
    assert "the team that runs Lightbox does it" in page
    assert "Ask an admin of" not in page
