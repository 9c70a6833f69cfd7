"""The link of an invitation e-mail that "Send again" replaced says that a newer e-mail was sent
and to use the link in the latest one (it said the link was mistyped), naming nothing that the
link's own refusal pages do not: not the organization, the address or the inviter. It never works
again, whatever became of the invitation, and it is not counted as a guessed link."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Invitation, SupersededInvitationToken
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db

CONSULTANT = "ext.one@stmarys.example"
NEWER = "A newer invitation e-mail was sent"


@pytest.fixture
def invitation(org_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    invitation, raw = services.invitation_create(organization=org_a, by=clinician_a, email=CONSULTANT,
                                                 role=Role.EXTERNAL_CONSULTANT, cases=[case])
    _sent_earlier(invitation)
    mail.outbox.clear()
    return invitation, raw


def _sent_earlier(invitation):
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now() - timedelta(minutes=2))


def _raw_of(message) -> str:
    return re.search(r"/invite/([^/\s]+)/", message.body).group(1)


def _sent_again(invitation, by) -> str:
    raw = services.invitation_resend(invitation=Invitation.objects.get(pk=invitation.pk), by=by)
    _sent_earlier(invitation)
    return raw


def test_the_earlier_links_page_says_a_newer_email_was_sent(org_a, clinician_a, invitation, verified_client):
    invitation, old_raw = invitation
    assert verified_client(clinician_a).post(f"/org/invitations/{invitation.public_id}/resend/").status_code == 302
    new_raw = _raw_of(mail.outbox[0])
    assert services.invitation_lookup(old_raw) == (invitation, services.Refusal.SUPERSEDED)

    page = Client().get(f"/invite/{old_raw}/")
    text = page.content.decode()
    assert page.status_code == 410
    assert NEWER in text and "latest invitation e-mail" in text and "mistyped" not in text
    assert 'data-reason="superseded"' in text
    # nothing of the invitation: not its organization, its address or its inviter
    for named in (org_a.name, CONSULTANT, clinician_a.email, clinician_a.display_name):
        assert named not in text
    refused = AuditEvent.objects.get(action="invitation.refused")
    assert refused.details == {"reason": "superseded"} and refused.organization_id == org_a.pk
    # the newest link works
    assert Client().get(f"/invite/{new_raw}/").status_code == 200


def test_every_earlier_link_says_so_not_only_the_last_one(clinician_a, invitation):
    invitation, first = invitation
    second = _sent_again(invitation, clinician_a)
    third = _sent_again(invitation, clinician_a)
    assert services.invitation_lookup(first) == (invitation, services.Refusal.SUPERSEDED)
    assert services.invitation_lookup(second) == (invitation, services.Refusal.SUPERSEDED)
    assert services.invitation_lookup(third) == (invitation, None)
    # a link never sent is still unknown
    assert services.invitation_lookup("x" * 43) == (None, services.Refusal.UNKNOWN)


def test_an_earlier_link_never_accepts_the_invitation(clinician_a, invitation):
    invitation, old_raw = invitation
    _sent_again(invitation, clinician_a)
    user = UserFactory(email=CONSULTANT)
    client = Client()
    client.force_login(user)
    response = client.post(f"/invite/{old_raw}/", {"step": "accept"})
    assert response.status_code == 410 and NEWER in response.content.decode()
    assert Invitation.objects.get(pk=invitation.pk).accepted_at is None
    # withdrawn since: the earlier link still sends to the latest e-mail, and works no more
    services.invitation_revoke(invitation=invitation, by=clinician_a)
    assert services.invitation_lookup(old_raw) == (invitation, services.Refusal.SUPERSEDED)


def test_an_earlier_link_is_not_counted_as_a_guessed_one(clinician_a, invitation, settings):
    invitation, old_raw = invitation
    new_raw = _sent_again(invitation, clinician_a)
    client = Client()
    for _ in range(settings.LIGHTBOX_INVITE_TOKEN_MAX_FAILURES + 2):
        assert client.get(f"/invite/{old_raw}/").status_code == 410
    assert client.get(f"/invite/{new_raw}/").status_code == 200


def test_a_resend_that_was_not_sent_leaves_the_earlier_link_working(clinician_a, invitation, settings):
    """The mail server refused the new e-mail: the earlier link is put back, and is not a
    superseded one."""
    invitation, old_raw = invitation
    settings.EMAIL_BACKEND = "tests.accounts.test_invitation_resend._DownMailServer"
    with pytest.raises(ValidationError):  # said to the sender
        services.invitation_resend(invitation=invitation, by=clinician_a)
    assert services.invitation_lookup(old_raw) == (invitation, None)
    assert not SupersededInvitationToken.objects.exists()


def test_a_refused_link_opened_signed_in_leads_to_the_dashboard_not_to_sign_in(clinician_a, invitation, client_as):
    """QA: an earlier link opened by someone signed in offered "Go to sign-in"; signed in, the way
    on is the dashboard (signed out, the sign-in page, as before)."""
    invitation, first = invitation
    _sent_again(invitation, clinician_a)
    signed_out = Client().get(f"/invite/{first}/").content.decode()
    assert 'data-testid="to-sign-in"' in signed_out and 'data-testid="to-dashboard"' not in signed_out
    from apps.organizations.models import Role
    from tests.factories import member

    someone = member(invitation.organization, Role.RADIOLOGIST, email="rad.signed.in@alpha.example")
    signed_in = client_as(someone).get(f"/invite/{first}/").content.decode()
    assert 'data-testid="to-dashboard"' in signed_in and 'data-testid="to-sign-in"' not in signed_in
