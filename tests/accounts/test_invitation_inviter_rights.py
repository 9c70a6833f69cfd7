"""An invitation gives what its inviter may still give when it is accepted, not what they could
when they sent it; and it does not take back a member whom the organization let go.

- a consultant who reshared a case by invitation, whose own share was then revoked (or a
  clinician deactivated since): the invitee gets nothing of that case, and is told so;
- the inviter's share asked for a second factor: still theirs to reshare (they passed it when
  they invited), so the invitee gets the case;
- a staff invitation from an admin who no longer manages the members is refused;
- a deactivated member cannot reactivate themselves with an invitation still in their mailbox;
  an admin's invitation takes them back, recorded as a membership change;
- revoking a share, or ending a membership, withdraws the invitations that came from it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Invitation, User
from apps.audit.models import AuditEvent
from apps.organizations import services as org_services
from apps.organizations.models import Membership, Role
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from apps.sharing.services import grant_create, grants_revoke
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-enough-passphrase-42"


def _accept_new_account(raw: str) -> tuple[Client, object]:
    client = Client()
    response = client.post(f"/invite/{raw}/", {"step": "account", "full_name": "New Person",
                                                "password1": PASSWORD, "password2": PASSWORD})
    return client, response


def _reshare(case, by, email="c1@ext.example", *, mfa_required=False):
    """A consultant holding a share of ``case`` that lets them reshare it."""
    consultant = member(case.organization, Role.EXTERNAL_CONSULTANT, email=email)
    grant = grant_create(case=case, grantee=consultant, permissions=["view", "reshare"],
                         mfa_required=mfa_required, expires_at=timezone.now() + timedelta(days=3), by=by)
    consultant.is_verified = lambda: True  # they invite from a session that passed the second factor
    return consultant, grant


def _invite(org, by, cases, email="c2@ext.example", role=Role.EXTERNAL_CONSULTANT):
    return services.invitation_create(organization=org, by=by, email=email, role=role, cases=cases)


def _withdraw_uses(invitation):
    """Mark ``invitation`` withdrawn no more (to accept it as if the withdrawal had not happened)."""
    Invitation.objects.filter(pk=invitation.pk).update(revoked_at=None)
    invitation.refresh_from_db()


def test_an_invitation_gives_nothing_of_a_case_its_inviter_lost_the_share_of(org_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    kept = CaseFactory(organization=org_a, created_by=clinician_a)
    c1, share = _reshare(case, clinician_a)
    grant_create(case=kept, grantee=c1, permissions=["view", "reshare"],
                 expires_at=timezone.now() + timedelta(days=3), by=clinician_a)
    invitation, raw = _invite(org_a, c1, [case, kept])
    grants_revoke(grants=[share], by=clinician_a, reason="revoked")  # shared by mistake
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is None  # it still gives `kept`

    _client, response = _accept_new_account(raw)
    assert response.status_code == 302
    c2 = User.objects.get(email="c2@ext.example")
    assert list(Grant.objects.filter(grantee=c2).values_list("case_id", flat=True)) == [kept.pk]
    c2.is_verified = lambda: True
    assert not policy.can(c2, Action.VIEW_CASE, case) and policy.can(c2, Action.VIEW_CASE, kept)
    # the page says what was not given (a count: nothing of the case), and the trail records which
    notices = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("1 case named in the invitation was not shared with you" in n for n in notices), notices
    event = AuditEvent.objects.get(action="invitation.accepted")
    assert event.details["cases_not_given"] == [str(case.public_id)]


def test_an_invitation_from_a_deactivated_clinician_gives_nothing(org_a, admin_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    invitation, _raw = _invite(org_a, clinician_a, [case], email="c3@ext.example")
    membership = Membership.objects.get(user=clinician_a, organization=org_a)
    org_services.membership_update(membership=membership, by=admin_a, role=Role.CLINICIAN, is_active=False)
    _withdraw_uses(invitation)  # withdrawn by the deactivation (tested below); accepted anyway:

    c3 = User.objects.create_user(email="c3@ext.example", password=PASSWORD)
    accepted = services.invitation_accept(invitation=invitation, user=c3)
    assert accepted.cases_not_given == 1 and accepted.grants == []
    assert not Grant.objects.filter(grantee=c3).exists()


def test_an_inviter_whose_share_asks_a_second_factor_still_gives_it(org_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    c1, _share = _reshare(case, clinician_a, mfa_required=True)
    _invitation, raw = _invite(org_a, c1, [case])
    _client, response = _accept_new_account(raw)
    assert response.status_code == 302
    c2 = User.objects.get(email="c2@ext.example")
    assert Grant.objects.filter(grantee=c2, case=case, created_by=c1).exists()


def test_a_staff_invitation_from_an_admin_who_no_longer_manages_members_is_refused(org_a, admin_a):
    other_admin = member(org_a, Role.ORG_ADMIN, email="admin2@alpha.example")
    invitation, raw = _invite(org_a, other_admin, [], email="rad@new.example", role=Role.RADIOLOGIST)
    membership = Membership.objects.get(user=other_admin, organization=org_a)
    org_services.membership_update(membership=membership, by=admin_a, role=Role.CLINICIAN, is_active=True)

    response = Client().get(f"/invite/{raw}/")
    assert response.status_code == 403 and b"can no longer give the access" in response.content
    _client, response = _accept_new_account(raw)
    assert response.status_code == 403
    assert not User.objects.filter(email="rad@new.example").exists()
    user = User.objects.create_user(email="rad@new.example", password=PASSWORD)
    with pytest.raises(ValidationError) as refused:
        services.invitation_accept(invitation=invitation, user=user)
    assert refused.value.code == services.Refusal.INVITER_RIGHTS
    invitation.refresh_from_db()
    assert invitation.accepted_at is None and not Membership.objects.filter(user=user).exists()


def test_a_deactivated_member_cannot_reactivate_themselves(org_a, admin_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="c4@ext.example")
    invitation, raw = _invite(org_a, clinician_a, [case], email="c4@ext.example")
    membership = Membership.objects.get(user=consultant, organization=org_a)
    org_services.membership_update(membership=membership, by=admin_a, role=Role.EXTERNAL_CONSULTANT,
                                   is_active=False)
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None  # withdrawn with the membership
    _withdraw_uses(invitation)

    with pytest.raises(ValidationError) as refused:
        services.invitation_accept(invitation=invitation, user=consultant)
    assert refused.value.code == services.Refusal.MEMBERSHIP_ENDED
    membership.refresh_from_db()
    invitation.refresh_from_db()
    assert not membership.is_active and invitation.accepted_at is None
    assert not Grant.objects.filter(grantee=consultant).exists()
    # the page says so, signed in as themselves
    client = Client()
    client.force_login(consultant)
    response = client.post(f"/invite/{raw}/", {"step": "accept"})
    assert response.status_code == 403 and b"Your membership in this organization was ended" in response.content


def test_an_admins_invitation_takes_a_member_back_recorded(org_a, admin_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="c5@ext.example")
    membership = Membership.objects.get(user=consultant, organization=org_a)
    org_services.membership_update(membership=membership, by=admin_a, role=Role.EXTERNAL_CONSULTANT,
                                   is_active=False)
    invitation, _raw = _invite(org_a, admin_a, [], email="c5@ext.example", role=Role.CLINICIAN)
    services.invitation_accept(invitation=invitation, user=consultant)
    membership.refresh_from_db()
    assert membership.is_active and membership.role == Role.CLINICIAN
    event = AuditEvent.objects.filter(action="membership.updated", actor=consultant).get()
    assert event.details["before"] == {"role": Role.EXTERNAL_CONSULTANT, "is_active": False}
    assert event.details["after"] == {"role": Role.CLINICIAN, "is_active": True}
    assert event.details["invited_by"] == str(admin_a.public_id)


def test_revoking_a_share_withdraws_the_invitations_that_came_only_from_it(org_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    other = CaseFactory(organization=org_a, created_by=clinician_a)
    c1, share = _reshare(case, clinician_a)
    grant_create(case=other, grantee=c1, permissions=["view", "reshare"],
                 expires_at=timezone.now() + timedelta(days=3), by=clinician_a)
    only_case, _ = _invite(org_a, c1, [case], email="x1@ext.example")
    both, _ = _invite(org_a, c1, [case, other], email="x2@ext.example")
    unrelated, _ = _invite(org_a, c1, [other], email="x3@ext.example")
    by_clinician, _ = _invite(org_a, clinician_a, [case], email="x4@ext.example")

    grants_revoke(grants=[share], by=clinician_a, reason="revoked")
    state = {i.email: i.revoked_at is not None for i in Invitation.objects.all()}
    assert state == {only_case.email: True, both.email: False, unrelated.email: False,
                     by_clinician.email: False}
    assert AuditEvent.objects.filter(action="invitation.revoked", details__reason="revoked").count() == 1


def test_ending_a_membership_withdraws_invitations_to_and_from_them(org_a, admin_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    sent, _ = _invite(org_a, clinician_a, [case], email="y1@ext.example")
    to_them, _ = _invite(org_a, admin_a, [], email=clinician_a.email, role=Role.RADIOLOGIST)
    colleague = member(org_a, Role.CLINICIAN, email="colleague@alpha.example")
    by_colleague, _ = _invite(org_a, colleague, [case], email="y2@ext.example")
    membership = Membership.objects.get(user=clinician_a, organization=org_a)
    org_services.membership_update(membership=membership, by=admin_a, role=Role.CLINICIAN, is_active=False)
    state = {i.email: i.revoked_at is not None for i in Invitation.objects.all()}
    assert state == {sent.email: True, to_them.email: True, by_colleague.email: False}
