"""An account of no organization that is a patient only by its history (its patient membership
ended; a patient invitation it accepted, with no membership) is refused by the policy everything
but the patient portal (``policy._downloads_as_patient``: a patient of that organization by record),
yet the access gate kept it to the portal only when all its live shares were patient-education
ones: home was the staff dashboard and every other page the staff refusal. The gate now asks the
policy (``policy.kept_to_portal_without_membership``): such an account is sent to the portal like a
patient member, unless a share of another organization gives it a case page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.organizations.models import Membership, Role
from apps.sharing import policy
from apps.sharing.policy import Action
from apps.sharing.usecases import UseCase
from tests.factories import CaseFactory, GrantFactory, PatientFactory, UserFactory, member
from tests.patient_links import link_patient_account

pytestmark = pytest.mark.django_db


def _membership_ended(org_a):
    """A patient of Alpha by its accepted invitation, whose patient membership was deactivated."""
    user = member(org_a, Role.PATIENT, email="ended.patient@home.example")
    link_patient_account(user, PatientFactory(organization=org_a))
    Membership.objects.filter(user=user).update(is_active=False)
    return user


def _invited_without_membership(org_a):
    """An account linked to an Alpha patient by an accepted patient invitation, never a member."""
    user = UserFactory(email="linked.patient@home.example")
    link_patient_account(user, PatientFactory(organization=org_a))
    return user


_HISTORIES = {"patient_membership_ended": _membership_ended,
              "patient_invitation_no_membership": _invited_without_membership}


@pytest.mark.parametrize("history", list(_HISTORIES))
@pytest.mark.parametrize("shared", [False, True], ids=["no_share", "telehealth_share_of_alpha"])
def test_an_account_patient_only_by_its_history_is_kept_to_the_portal(org_a, client_as, history, shared):
    user = _HISTORIES[history](org_a)
    pages = [reverse("sharing:shared_with_me")]
    if shared:
        grant = GrantFactory(organization=org_a, case=CaseFactory(organization=org_a), grantee=user,
                             use_case=UseCase.TELEHEALTH)
        assert not policy.can(user, Action.VIEW_CASE, grant.case)  # the policy refuses it as a patient
        pages.append(reverse("sharing:shared_case", kwargs={"case_id": grant.case.public_id}))
    client = client_as(user)
    home = client.get("/")
    assert home.status_code == 302 and home["Location"] == reverse("education:portal")
    for url in pages:
        refused = client.get(url)
        assert refused.status_code == 403, url
        html = refused.content.decode()
        assert 'data-testid="back-to-portal"' in html and "Your role in this organization" not in html, url
    assert client.get(reverse("education:portal")).status_code == 200


def test_a_share_of_another_organization_still_gives_its_case_page(org_a, org_b, client_as):
    """A patient of Alpha by its history, sent a second opinion by Beta (whose patient it is not):
    the policy gives that share's case page, so the gate does not keep the account to the portal."""
    user = _invited_without_membership(org_a)
    grant = GrantFactory(organization=org_b, case=CaseFactory(organization=org_b), grantee=user,
                         use_case=UseCase.SECOND_OPINION)
    assert policy.can(user, Action.VIEW_CASE, grant.case)
    client = client_as(user)
    assert client.get("/").status_code == 200
    assert client.get(reverse("sharing:shared_case", kwargs={"case_id": grant.case.public_id})).status_code == 200


def test_an_account_of_no_organization_and_no_patient_history_is_not_kept_to_the_portal(org_a, client_as):
    user = UserFactory(email="reader@elsewhere.example")
    GrantFactory(organization=org_a, case=CaseFactory(organization=org_a), grantee=user,
                 use_case=UseCase.SECOND_OPINION)
    assert client_as(user).get("/").status_code == 200
    assert client_as(UserFactory(email="nobody@elsewhere.example")).get("/").status_code == 200
