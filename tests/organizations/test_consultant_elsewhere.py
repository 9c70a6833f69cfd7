"""An invited outside consultant of Alpha (a consultant membership, made by accepting Alpha's
invitation) who is staff of Beta is decided in Alpha as before the active-organization rule, as
an outside consultant with no membership there is (6ca7505: "members of the case's organization
only: an outside consultant allowed to reshare is decided as before"). Their consultant role acts
for Alpha in nothing (it holds no staff-side action: ``policy.acts_for_organization``); what they
do there is what Alpha's shares give them. Found by QA: working in Beta, such a consultant was
asked to switch to Alpha before resharing a case Alpha shared with them, unlike a consultant of
no membership there. Alpha's staff are still asked to switch (tests/cases/test_active_organization.py)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Role
from apps.organizations.selectors import memberships_of
from apps.sharing import policy, selectors
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from apps.sharing.services import grant_create
from tests.factories import CaseFactory, MembershipFactory, StudyFactory, UserFactory, member

pytestmark = pytest.mark.django_db

SWITCH_NEEDED = 'data-testid="switch-needed"'


@pytest.fixture
def alpha_case(org_a, clinician_a):
    return CaseFactory(organization=org_a, title="Left lung lesion follow-up", created_by=clinician_a,
                       responsible_clinician=clinician_a)


@pytest.fixture
def consultant(org_a, org_b, alpha_case, clinician_a):
    """A clinician of Beta, Alpha's invited consultant, to whom Alpha shared a case with resharing."""
    user = member(org_b, Role.CLINICIAN, email="consultant@beta.example")
    MembershipFactory(user=user, organization=org_a, role=Role.EXTERNAL_CONSULTANT)
    grant_create(case=alpha_case, grantee=user, permissions=["view", "reshare"], by=clinician_a,
                 expires_at=timezone.now() + timedelta(hours=24))
    return user


def _in_beta(user, org_b) -> Client:
    client = Client()
    client.force_login(user)
    assert client.post(reverse("organizations:switch", kwargs={"organization_id": org_b.public_id})).status_code == 302
    return client


def _request(user, org, url: str):
    request = RequestFactory().get(url)
    request.user, request.my_memberships, request.organization = user, memberships_of(user=user), org
    return request


def test_an_invited_consultant_who_is_staff_elsewhere_reshares_without_switching(consultant, alpha_case, org_a,
                                                                                 org_b):
    study = StudyFactory(organization=org_a, case=alpha_case)
    client = _in_beta(consultant, org_b)
    share_url = reverse("sharing:case_share", kwargs={"case_id": alpha_case.public_id})
    for url in (share_url, reverse("sharing:study_share", kwargs={"study_id": study.public_id}),
                reverse("cases:case_detail", kwargs={"case_id": alpha_case.public_id})):
        page = client.get(url)
        text = page.content.decode()
        assert page.status_code == 200 and SWITCH_NEEDED not in text, url
        assert "Left lung lesion follow-up" in text, url
    # the reshare is reviewed and made (with Beta active), as by a consultant of no membership there
    UserFactory(email="colleague@elsewhere.example")  # an address with an account (none: invited first)
    data = {"use_case": "second_opinion", "recipient_kind": "email", "recipient_email": "colleague@elsewhere.example"}
    review = client.post(share_url, data)
    assert review.status_code == 200 and SWITCH_NEEDED not in review.content.decode()
    token = re.search(r'name="confirm_token" value="([^"]+)"', review.content.decode()).group(1)
    made = client.post(share_url, {**data, "confirm": "1", "confirm_token": token})
    assert made.status_code == 200, made.content.decode()[:300]
    assert 'data-testid="share-url"' in made.content.decode()
    assert Grant.objects.filter(case=alpha_case, created_by=consultant).count() == 1
    # the policy: Alpha is not one to switch to for them, the reshare decided on the share as ever
    request = _request(consultant, org_b, share_url)
    facts = policy.decision_facts(request, consultant)
    assert policy.organization_to_switch_to(request, alpha_case) is None
    assert policy.organizations_elsewhere(request) == []
    assert policy.can(consultant, Action.SHARE_CASE, alpha_case, facts=facts)
    assert policy.shareable_cases(consultant, org_a, facts=facts).filter(pk=alpha_case.pk).exists()
    # "Shared with me" in Beta lists Alpha's share to them (labelled with Alpha), not "switch to see it"
    assert selectors.grants_received(user=consultant, request=request).filter(case=alpha_case).exists()
    assert selectors.elsewhere_received(user=consultant, request=request) == []


def test_staff_of_both_are_still_asked_to_switch(consultant, alpha_case, org_a, org_b, clinician_a):
    """The same person made staff of Alpha (with their consent): Alpha's case is shared only
    once Alpha is the active one."""
    from apps.organizations.models import Membership

    Membership.objects.filter(user=consultant, organization=org_a).update(role=Role.RADIOLOGIST)
    client = _in_beta(consultant, org_b)
    page = client.get(reverse("sharing:case_share", kwargs={"case_id": alpha_case.public_id}))
    assert page.status_code == 200 and SWITCH_NEEDED in page.content.decode()
    request = _request(consultant, org_b, "/")
    assert policy.organization_to_switch_to(request, alpha_case) == org_a
    assert not policy.can(consultant, Action.SHARE_CASE, alpha_case,
                          facts=policy.decision_facts(request, consultant))
    assert not Grant.objects.filter(case=alpha_case).exclude(grantee=consultant).exists()
