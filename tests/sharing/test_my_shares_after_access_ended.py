""""My shares" lists a share only while its maker may still see its case (found by review): by
their role in its organization (an active membership that sees cases there) or through a live
share of their own that shows the case (an outside consultant resharing). Someone who left the
hospital, or whose role there no longer sees its cases, was still shown every share they had made
there: the case's title (renamed since, naming the patient), the recipient's address, its use and
expiry, though managing it was refused. One rule, ``policy.made_grants_listed``, also decides
whether they are offered the page for having made shares (``policy.has_shares_page``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Membership, Role
from apps.sharing import policy, selectors
from apps.sharing.services import grant_create, grants_revoke
from tests.factories import CaseFactory, GrantFactory, member

pytestmark = pytest.mark.django_db


def _share(org, owner, title: str):
    recipient = member(org, Role.EXTERNAL_CONSULTANT, email="recipient.mys@alpha.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, title=title)
    grant = grant_create(case=case, grantee=recipient, permissions=["view"], by=owner,
                         expires_at=timezone.now() + timedelta(days=1))
    return case, grant


def _rename(case, title: str) -> None:
    case.title = title
    case.save(update_fields=["title"])


def test_a_sharer_who_left_the_organization_no_longer_sees_the_shares_made_there(org_a, org_b, client_as):
    owner = member(org_a, Role.CLINICIAN, email="leaver.mys@alpha.example")
    case, grant = _share(org_a, owner, "Case A1")
    page = client_as(owner).get(reverse("sharing:my_shares")).content.decode()
    assert f'data-grant="{grant.public_id}"' in page  # listed while they work there
    Membership.objects.filter(user=owner, organization=org_a).update(is_active=False)  # left Alpha
    Membership.objects.create(user=owner, organization=org_b, role=Role.CLINICIAN, is_active=True)
    _rename(case, "Xylophant Qwzrt biopsy")
    response = client_as(owner).get(reverse("sharing:my_shares"))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-grant="{grant.public_id}"' not in page
    assert "Qwzrt" not in page and "Case A1" not in page
    assert "recipient.mys@alpha.example" not in page
    assert 'data-testid="my-shares-empty"' in page


@pytest.mark.parametrize("role", [Role.EXTERNAL_CONSULTANT, Role.PATIENT])
def test_a_sharer_whose_role_no_longer_sees_cases_no_longer_sees_the_shares(org_a, client_as, role):
    owner = member(org_a, Role.CLINICIAN, email="moved.mys@alpha.example")
    _case, grant = _share(org_a, owner, "Case A2 Wendrick")
    Membership.objects.filter(user=owner, organization=org_a).update(role=role)
    assert not selectors.grants_created_by(user=owner).exists()
    if role == Role.EXTERNAL_CONSULTANT:  # (a patient account is kept to the patient portal)
        page = client_as(owner).get(reverse("sharing:my_shares")).content.decode()
        assert f'data-grant="{grant.public_id}"' not in page and "Wendrick" not in page


def test_staff_of_another_role_that_sees_cases_still_see_their_shares(org_a, client_as):
    owner = member(org_a, Role.CLINICIAN, email="coord.mys@alpha.example")
    _case, grant = _share(org_a, owner, "Case A3")
    Membership.objects.filter(user=owner, organization=org_a).update(role=Role.COORDINATOR)
    page = client_as(owner).get(reverse("sharing:my_shares")).content.decode()
    assert f'data-grant="{grant.public_id}"' in page  # a coordinator sees cases, and manages shares


def test_a_consultant_sees_their_reshares_while_the_share_they_reshare_under_lasts(org_a, client_as):
    owner = member(org_a, Role.CLINICIAN, email="owner.mys@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="resharer.mys@alpha.example")
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner, title="Case Plimsoll")
    theirs = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner,
                          permissions=["view", "reshare"])
    colleague = member(org_a, Role.EXTERNAL_CONSULTANT, email="colleague.mys@alpha.example")
    reshared = GrantFactory(organization=org_a, case=case, grantee=colleague, created_by=consultant)
    client = client_as(consultant)
    assert f'data-grant="{reshared.public_id}"' in client.get(reverse("sharing:my_shares")).content.decode()
    grants_revoke(grants=[theirs], by=owner, reason="revoked by sharer")
    page = client.get(reverse("sharing:my_shares")).content.decode()
    assert f'data-grant="{reshared.public_id}"' not in page and "Plimsoll" not in page
    assert not policy.has_shares_page(consultant)


def test_the_shares_page_is_not_offered_for_shares_made_where_one_no_longer_works(org_a, org_b):
    owner = member(org_a, Role.CLINICIAN, email="gone.mys@alpha.example")
    _share(org_a, owner, "Case A4")
    Membership.objects.filter(user=owner, organization=org_a).update(is_active=False)
    Membership.objects.create(user=owner, organization=org_b, role=Role.PATIENT, is_active=True)
    assert not policy.has_shares_page(owner)
