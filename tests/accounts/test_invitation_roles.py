"""The invitation form offers exactly the roles its user may give. QA: a clinician's form
offered Organization admin, Radiologist, Clinician and Coordinator, each refused on sending with
"You may not give this access"."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied

from apps.accounts import services
from apps.accounts.models import Invitation
from apps.organizations.models import Role
from apps.sharing import policy
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

SEND = "/org/invitations/new/"


def _offered(html: str) -> list[str]:
    select = re.search(r'<select name="role"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.findall(r'<option value="([^"]*)"', select)


@pytest.mark.parametrize(("role", "offered"), [
    (Role.CLINICIAN, [Role.EXTERNAL_CONSULTANT]),
    (Role.RADIOLOGIST, [Role.EXTERNAL_CONSULTANT]),
    (Role.ORG_ADMIN, [Role.ORG_ADMIN, Role.RADIOLOGIST, Role.CLINICIAN, Role.COORDINATOR, Role.EXTERNAL_CONSULTANT]),
])
def test_the_form_offers_the_roles_the_policy_lets_its_user_give(org_a, verified_client, role, offered):
    user = member(org_a, role)
    CaseFactory(organization=org_a, created_by=user, responsible_clinician=user)
    page = verified_client(user).get(SEND)
    assert page.status_code == 200
    assert sorted(_offered(page.content.decode())) == sorted(offered)
    assert sorted(policy.invitable_roles(user, org_a)) == sorted(offered)


def test_a_role_not_offered_is_refused_beside_the_field(org_a, clinician_a, verified_client):
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    response = verified_client(clinician_a).post(SEND, {"email": "new.colleague@alpha.example",
                                                        "role": Role.RADIOLOGIST, "cases": [case.pk],
                                                        "language": "en"})
    assert response.status_code == 400 and "role" in response.context["form"].errors
    assert "You may not give this access" not in response.content.decode()
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("inviter_role", [Role.ORG_ADMIN, Role.CLINICIAN, Role.COORDINATOR, Role.RADIOLOGIST])
def test_the_service_agrees_with_what_the_policy_offers(org_a, inviter_role, mailoutbox):
    """What is offered is sent (a consultant to a case the inviter may share), what is not is
    refused by the service's own check."""
    inviter = member(org_a, inviter_role)
    case = CaseFactory(organization=org_a, created_by=inviter, responsible_clinician=inviter)
    offered = policy.invitable_roles(inviter, org_a)
    for n, role in enumerate(r for r in Role.values if r != Role.PATIENT):
        cases = [case] if policy.can(inviter, policy.Action.SHARE_CASE, case) else []
        send = {"organization": org_a, "by": inviter, "email": f"person{n}@elsewhere.example", "role": role,
                "cases": cases}
        if role in offered:
            services.invitation_create(**send)
        else:
            with pytest.raises(PermissionDenied):
                services.invitation_create(**send)
