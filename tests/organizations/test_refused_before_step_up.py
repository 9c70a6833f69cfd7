"""Someone whose role may not manage members or the organization is refused those pages at once,
not first walked through passing (or setting up) a second factor that the page then refuses them
after (found by QA on the demo: a radiologist enrolled an authenticator to reach /org/members/,
then got 403). Who may is still asked for a recent second factor first."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page", ["organizations:members", "organizations:settings"])
def test_a_role_that_may_not_is_refused_before_the_step_up(settings, client_as, org_a, page):
    settings.LIGHTBOX_MFA_ENFORCED = True
    radiologist = member(org_a, Role.RADIOLOGIST)
    admin = member(org_a, Role.ORG_ADMIN)
    url = reverse(page)
    refused = client_as(radiologist).get(url)
    assert refused.status_code == 403
    assert not AuditEvent.objects.filter(actor=radiologist, action="auth.step_up_required").exists()
    asked = client_as(admin).get(url)
    assert asked.status_code == 302 and asked["Location"].startswith("/accounts/mfa/")  # step-up or enrolment


def test_an_admin_of_another_of_their_organizations_is_asked_to_switch_for_its_membership(client_as, org_a, org_b):
    """A membership of the organization they manage, opened while another of theirs is active,
    asks to switch (the check of the active organization's role came first and refused it)."""
    from apps.organizations.models import Membership
    from tests.factories import MembershipFactory, working_in

    admin = member(org_a, Role.ORG_ADMIN)
    MembershipFactory(user=admin, organization=org_b, role=Role.CLINICIAN)
    other = member(org_a, Role.RADIOLOGIST)
    client = client_as(admin)
    working_in(client, org_b)
    url = reverse("organizations:membership_edit",
                  kwargs={"membership_id": Membership.objects.get(user=other).public_id})
    page = client.get(url)
    assert page.status_code == 200 and 'switch-needed' in page.content.decode()
