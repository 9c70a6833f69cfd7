"""Someone in two organizations withdraws or sends again an invitation of one of them only while
it is the active one (the header's switcher): a Withdraw or Send again of Alpha's invitation sent
with Beta active (a page of before the switch, another tab) gets the page that asks to switch to
Alpha, naming Alpha only, and is refused there (403, recorded) with nothing changed; switched,
it is done. As the membership, case and share pages (apps.organizations.switching)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Invitation
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.factories import CaseFactory, MembershipFactory, working_in

pytestmark = pytest.mark.django_db

CONSULTANT = "ext.one@stmarys.example"


@pytest.fixture
def invitation(org_a, org_b, clinician_a):
    """Alpha's consultant invitation, sent by a clinician of Alpha who is also a clinician of Beta
    (more than a minute ago), and its raw token."""
    MembershipFactory(user=clinician_a, organization=org_b, role=Role.CLINICIAN)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    invitation, raw = services.invitation_create(organization=org_a, by=clinician_a, email=CONSULTANT,
                                                 role=Role.EXTERNAL_CONSULTANT, cases=[case])
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now() - timedelta(minutes=2))
    mail.outbox.clear()
    return invitation, raw


def _switched(client, organization):
    return client.post(reverse("organizations:switch", kwargs={"organization_id": organization.public_id}))


@pytest.mark.parametrize("view", ["invitation_revoke", "invitation_resend"])
def test_another_organizations_invitation_is_acted_on_only_after_the_switch(
        org_a, org_b, clinician_a, invitation, view, verified_client):
    invitation, raw = invitation
    before = Invitation.objects.filter(pk=invitation.pk).values("token_hash", "revoked_at", "sent_at").get()
    url = reverse(f"accounts:{view}", kwargs={"invitation_id": invitation.public_id})
    client = verified_client(clinician_a)
    working_in(client, org_b)

    refused = client.post(url)
    text = refused.content.decode()
    assert refused.status_code == 403 and 'data-testid="switch-needed"' in text and "Switch to Alpha Hospital" in text
    assert CONSULTANT not in text
    assert f'name="next" value="{reverse("accounts:invitation_list")}"' in text
    assert Invitation.objects.filter(pk=invitation.pk).values("token_hash", "revoked_at", "sent_at").get() == before
    assert mail.outbox == [] and services.invitation_lookup(raw) == (invitation, None)
    assert not AuditEvent.objects.filter(action__in=["invitation.revoked", "invitation.resent"]).exists()
    assert AuditEvent.objects.filter(action="access.denied", actor=clinician_a, organization=org_a,
                                     details__wanted="manage_members").exists()

    # switched to Alpha (the page's button), it is done
    assert _switched(client, org_a).status_code == 302
    done = client.post(url)
    assert done.status_code == 302 and done.url == reverse("accounts:invitation_list")
    after = Invitation.objects.get(pk=invitation.pk)
    if view == "invitation_revoke":
        assert after.revoked_at is not None
    else:
        assert after.token_hash != before["token_hash"] and len(mail.outbox) == 1


def test_someone_of_one_organization_is_not_asked(org_a, clinician_a, verified_client):
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    invitation, _raw = services.invitation_create(organization=org_a, by=clinician_a, email=CONSULTANT,
                                                  role=Role.EXTERNAL_CONSULTANT, cases=[case])
    response = verified_client(clinician_a).post(reverse("accounts:invitation_revoke",
                                                         kwargs={"invitation_id": invitation.public_id}))
    assert response.status_code == 302
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None
