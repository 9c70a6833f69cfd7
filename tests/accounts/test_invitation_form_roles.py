"""The invitation form asks the policy for the roles it offers once per request (its choices
were a callable, asked again each time they were read: checking the choice, drawing the list),
and an inviter who does not manage members must choose the cases a consultant is invited to: a
consultant invitation with no case ticked was refused as a right ("You may not give this
access"), when a choice was left out."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core import mail

from apps.accounts.models import Invitation
from apps.organizations.models import Role
from apps.sharing import policy
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

URL = "/org/invitations/new/"
CASES_REQUIRED = ("Choose the cases the consultant is invited to: you may invite a consultant only to cases you "
                  "share with them.")


@pytest.fixture
def radiologist(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


def test_the_roles_offered_are_asked_for_once_per_request(org_a, radiologist, verified_client):
    case = CaseFactory(organization=org_a, created_by=radiologist)
    client = verified_client(radiologist)
    real = policy.invitable_roles
    for send in ({}, {"email": "not an address", "role": Role.EXTERNAL_CONSULTANT, "cases": [case.pk]}):
        with mock.patch.object(policy, "invitable_roles", side_effect=real) as asked:
            response = client.post(URL, send) if send else client.get(URL)
        assert response.status_code == (400 if send else 200)
        assert asked.call_count == 1
        form = response.context["form"]
        assert [value for value, _label in form.fields["role"].choices] == [Role.EXTERNAL_CONSULTANT]


def test_an_inviter_who_manages_no_members_must_choose_cases(org_a, radiologist, verified_client):
    CaseFactory(organization=org_a, created_by=radiologist)
    client = verified_client(radiologist)
    response = client.post(URL, {"email": "ext.one@stmarys.example", "role": Role.EXTERNAL_CONSULTANT,
                                 "language": "en"})
    assert response.status_code == 400
    assert response.context["form"].errors["cases"] == [CASES_REQUIRED]
    page = response.content.decode()
    assert "You may not give this access" not in page
    assert not Invitation.objects.exists() and not mail.outbox


def test_an_admin_may_still_invite_a_consultant_to_no_case(org_a, admin_a, verified_client):
    client = verified_client(admin_a)
    response = client.post(URL, {"email": "ext.one@stmarys.example", "role": Role.EXTERNAL_CONSULTANT,
                                 "language": "en"})
    assert response.status_code == 302
    assert Invitation.objects.get().cases.count() == 0
