"""An org admin of two organizations works in one at a time (the header's switcher): with Beta
active, a link to a membership of Alpha (an e-mail's, a tab of before the switch) asks to switch
to Alpha first, naming Alpha only; a change sent there is refused (403, recorded) until Alpha is
the active one. The same page as the sharing, case and study pages
(apps.organizations.switching)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from tests.factories import MembershipFactory, member

pytestmark = pytest.mark.django_db


def _switched(client: Client, organization, **data):
    return client.post(reverse("organizations:switch", kwargs={"organization_id": organization.public_id}), data)


def test_another_organizations_membership_asks_to_switch_and_is_changed_only_after(org_a, org_b, clinician_a):
    admin = member(org_b, Role.ORG_ADMIN, email="admin.both@beta.example")
    MembershipFactory(user=admin, organization=org_a, role=Role.ORG_ADMIN)
    membership = Membership.objects.get(user=clinician_a, organization=org_a)
    url = reverse("organizations:membership_edit", args=[membership.public_id])
    client = Client()
    client.force_login(admin)
    assert _switched(client, org_b).status_code == 302
    page = client.get(url)
    text = page.content.decode()
    assert page.status_code == 200 and 'data-testid="switch-needed"' in text and "Switch to Alpha Hospital" in text
    assert clinician_a.email not in text and f'name="next" value="{url}"' in text
    refused = client.post(url, {"role": Role.COORDINATOR, "is_active": "on"})
    assert refused.status_code == 403 and 'data-testid="switch-needed"' in refused.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.CLINICIAN
    assert AuditEvent.objects.filter(action="access.denied", actor=admin, organization=org_a,
                                     details__wanted="manage_members").exists()
    # switched to Alpha (the page's button), the change is made
    switched = _switched(client, org_a, next=url)
    assert switched.status_code == 302 and switched["Location"] == url
    assert clinician_a.email in client.get(url).content.decode()
    assert client.post(url, {"role": Role.COORDINATOR, "is_active": "on"}).status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.COORDINATOR


def test_an_admin_of_one_organization_is_not_asked(org_a, admin_a, clinician_a):
    membership = Membership.objects.get(user=clinician_a, organization=org_a)
    client = Client()
    client.force_login(admin_a)
    url = reverse("organizations:membership_edit", args=[membership.public_id])
    page = client.get(url)
    assert page.status_code == 200 and 'data-testid="switch-needed"' not in page.content.decode()
    assert client.post(url, {"role": Role.COORDINATOR, "is_active": "on"}).status_code == 302


def test_another_organizations_member_second_factor_is_reset_only_after_the_switch(org_a, org_b, clinician_a):
    admin = member(org_b, Role.ORG_ADMIN, email="admin.both@beta.example")
    MembershipFactory(user=admin, organization=org_a, role=Role.ORG_ADMIN)
    membership = Membership.objects.get(user=clinician_a, organization=org_a)
    url = reverse("accounts:member_mfa_reset", args=[membership.public_id])
    edit = reverse("organizations:membership_edit", args=[membership.public_id])
    client = Client()
    client.force_login(admin)
    assert _switched(client, org_b).status_code == 302
    refused = client.post(url)
    text = refused.content.decode()
    assert refused.status_code == 403 and 'data-testid="switch-needed"' in text and clinician_a.email not in text
    assert f'name="next" value="{edit}"' in text
    assert not AuditEvent.objects.filter(action="auth.mfa_reset").exists()
    assert AuditEvent.objects.filter(action="access.denied", actor=admin, organization=org_a,
                                     details__wanted="manage_members").exists()
    assert _switched(client, org_a).status_code == 302
    assert client.post(url).status_code == 302
    assert AuditEvent.objects.filter(action="auth.mfa_reset", actor=admin).exists()
