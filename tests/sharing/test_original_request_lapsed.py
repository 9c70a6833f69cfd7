"""A request for the original DICOM is decided only while the share it was asked under is still
its requester's: live (not revoked, not expired, its case open) and held by them (their grant, or
a group they are still in). Approving it gives them a new grant of the original; it must never
bring back access that was taken away.

Before, deciding checked only that the request was pending and its case open: a consultant whose
preview share was revoked (by its sharer, by closing the case, by the end of their membership)
got the original once a radiologist approved their old request, which the deciders' list still
showed as waiting. Now revoking a grant withdraws the requests waiting under it (recorded as
original_request.withdrawn); a request whose grant ended otherwise (it expired) is not listed
and deciding it is refused with a message, on the rows as they are locked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from apps.organizations.services import membership_update
from apps.sharing import policy, selectors, services
from apps.sharing.models import Grant, GrantSource, OriginalRequest
from apps.sharing.policy import Action
from tests.factories import member

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}
REASON = "Need the thin-slice series to measure."


def _preview_share(case, owner, grantee):
    return services.grant_create(case=case, grantee=grantee, by=owner, expires_at=timezone.now() + timedelta(hours=10),
                                 **PREVIEW)


def _decide_url(req):
    return reverse("sharing:original_request_decide", kwargs={"originalrequest_id": req.public_id})


def _end(how, *, grant, owner, admin, consultant):
    case = grant.case
    if how == "revoked":
        services.grants_revoke(grants=[grant], by=owner, reason="revoked by sharer")
    elif how == "membership_ended":
        membership = Membership.objects.get(user=consultant, organization=case.organization)
        membership_update(membership=membership, by=admin, role=membership.role, is_active=False)
    elif how == "case_closed_and_reopened":
        from apps.cases.services import case_close, case_reopen

        case_close(case=case, by=owner)
        case_reopen(case=case, by=owner)
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["revoked", "membership_ended", "case_closed_and_reopened"])
def test_a_request_under_a_revoked_share_is_withdrawn_and_cannot_be_approved(
        case, owner, consultant, radiologist, admin_a, client_as, how):
    grant = _preview_share(case, owner, consultant)
    req = services.original_request_create(grant=grant, by=consultant, reason=REASON)
    assert selectors.original_requests_pending_for(user=radiologist) == [req]

    _end(how, grant=grant, owner=owner, admin=admin_a, consultant=consultant)

    req.refresh_from_db()
    assert req.status == "withdrawn" and req.decided_by is None and req.decided_at is not None
    withdrawn = AuditEvent.objects.get(action=A.ORIGINAL_REQUEST_WITHDRAWN)
    assert withdrawn.target_id == str(req.public_id)
    # no longer waiting for the deciders: not listed, the page offers no decision
    assert selectors.original_requests_pending_for(user=radiologist) == []
    decider = client_as(radiologist)
    assert _decide_url(req) not in decider.get(reverse("sharing:my_shares")).content.decode()
    page = decider.get(_decide_url(req))
    assert page.status_code == 200 and 'name="decision"' not in page.content.decode()
    assert 'data-testid="request-withdrawn"' in page.content.decode()  # closed, and why

    # approving it (the page's POST, the service) is refused: no grant of the original
    grants_before = Grant.objects.count()
    assert decider.post(_decide_url(req), {"decision": "approve", "hours": 12}).status_code == 400
    with pytest.raises(ValidationError):
        services.original_request_decide(original_request=req, by=radiologist, approve=True, hours=12)
    assert Grant.objects.count() == grants_before
    assert not Grant.objects.filter(source=GrantSource.ORIGINAL_REQUEST).exists()
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)


def test_the_withdrawal_is_recorded_with_the_reason_the_share_ended(case, owner, consultant):
    grant = _preview_share(case, owner, consultant)
    req = services.original_request_create(grant=grant, by=consultant, reason=REASON)
    services.grants_revoke(grants=[grant], by=owner, reason="revoked by sharer")
    actions = list(AuditEvent.objects.filter(case_ref=case.public_id).order_by("id").values_list("action", flat=True))
    assert actions[-2:] == [A.GRANT_REVOKED, A.ORIGINAL_REQUEST_WITHDRAWN]
    event = AuditEvent.objects.get(action=A.ORIGINAL_REQUEST_WITHDRAWN)
    assert event.actor == owner and event.organization_id == case.organization_id
    assert event.details == {"reason": "revoked by sharer", "grant": str(grant.public_id)}
    assert event.target_id == str(req.public_id)


def test_a_request_under_an_expired_share_is_refused_with_a_message_and_comes_back_when_extended(
        case, owner, consultant, radiologist, client_as):
    """An expired share is not revoked (it can be extended): its request stays waiting, but is
    not listed and not decided while the share is not live. Decided on the rows as locked: a
    request read while its share was live is refused once it expired."""
    grant = _preview_share(case, owner, consultant)
    req = services.original_request_create(grant=grant, by=consultant, reason=REASON)
    stale = OriginalRequest.objects.select_related("grant", "grant__case", "requested_by").get(pk=req.pk)
    assert policy.original_request_decidable(stale)
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(ValidationError) as refused:
        services.original_request_decide(original_request=stale, by=radiologist, approve=True, hours=12)
    assert "can no longer be decided" in str(refused.value)
    assert selectors.original_requests_pending_for(user=radiologist) == []
    decider = client_as(radiologist)
    page = decider.get(_decide_url(req)).content.decode()
    assert 'data-testid="request-lapsed"' in page and 'name="decision"' not in page
    response = decider.post(_decide_url(req), {"decision": "approve", "hours": 12})
    assert response.status_code == 400
    assert "can no longer be decided" in response.content.decode()
    req.refresh_from_db()
    assert req.status == "pending" and req.approved_grant is None
    assert not Grant.objects.filter(source=GrantSource.ORIGINAL_REQUEST).exists()

    # extended, the share is live again, and so is its request
    grant.refresh_from_db()
    services.grant_extend(grant=grant, by=owner, expires_at=timezone.now() + timedelta(hours=5),
                          reason="the board moved to Friday")
    assert selectors.original_requests_pending_for(user=radiologist) == [req]
    approved = services.original_request_decide(original_request=req, by=radiologist, approve=True, hours=12)
    assert approved.status == "approved" and policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)


def test_a_member_taken_out_of_a_group_share_loses_their_request_not_the_others(
        case, owner, consultant, radiologist, admin_a):
    colleague = member(case.organization, Role.EXTERNAL_CONSULTANT, email="colleague@alpha.example")
    grant = services.grant_create(case=case, grantee=None, group_members=[consultant, colleague], group_name="Board",
                                  by=owner, expires_at=timezone.now() + timedelta(hours=10), **PREVIEW)
    mine = services.original_request_create(grant=grant, by=consultant, reason=REASON)
    theirs = services.original_request_create(grant=grant, by=colleague, reason=REASON)
    assert set(selectors.original_requests_pending_for(user=radiologist)) == {mine, theirs}

    membership = Membership.objects.get(user=consultant, organization=case.organization)
    membership_update(membership=membership, by=admin_a, role=membership.role, is_active=False)

    grant.refresh_from_db()
    assert grant.revoked_at is None  # the group's share stays, for the others
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == "withdrawn" and theirs.status == "pending"
    assert selectors.original_requests_pending_for(user=radiologist) == [theirs]
    with pytest.raises(ValidationError):
        services.original_request_decide(original_request=mine, by=radiologist, approve=True, hours=12)
    services.original_request_decide(original_request=theirs, by=radiologist, approve=True, hours=12)
    assert policy.can(colleague, Action.DOWNLOAD_ORIGINAL, case)
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)


def test_a_requester_out_of_the_group_without_the_service_is_not_decided(case, owner, consultant, radiologist):
    """Held is read from the group as it is: a requester no longer in it (taken out by hand, or
    by anything that does not withdraw their request) is refused, and not listed."""
    grant = services.grant_create(case=case, grantee=None, group_members=[consultant], group_name="Board",
                                  by=owner, expires_at=timezone.now() + timedelta(hours=10), **PREVIEW)
    req = services.original_request_create(grant=grant, by=consultant, reason=REASON)
    grant.group_members.remove(consultant)
    assert selectors.original_requests_pending_for(user=radiologist) == []
    with pytest.raises(ValidationError):
        services.original_request_decide(original_request=req, by=radiologist, approve=False)
    req.refresh_from_db()
    assert req.status == "pending"


def test_the_original_approved_under_a_share_ends_with_it_but_not_with_its_renewal(case, owner, consultant,
                                                                                   radiologist):
    """A consultant asked for the original under a preview share and it was approved: revoking
    the preview share revokes the approved original too (it was given because of that share);
    renewing the share carries it on, and the original approved under the old one runs its
    own course."""
    grant = _preview_share(case, owner, consultant)
    req = services.original_request_create(grant=grant, by=consultant, reason=REASON)
    services.original_request_decide(original_request=req, by=radiologist, approve=True, hours=12)
    req.refresh_from_db()
    assert policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)
    assert services.grants_revoke(grants=[grant], by=owner, reason="revoked by sharer") == 2
    req.approved_grant.refresh_from_db()
    assert req.approved_grant.revoked_at is not None
    assert req.approved_grant.revoke_reason == "revoked by sharer"
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)
    assert not policy.can(consultant, Action.VIEW_CASE, case)

    # a renewal: the original approved under the old share stays
    again = _preview_share(case, owner, consultant)
    req = services.original_request_create(grant=again, by=consultant, reason=REASON)
    services.original_request_decide(original_request=req, by=radiologist, approve=True, hours=12)
    req.refresh_from_db()
    assert services.grants_revoke(grants=[again], by=owner, reason="renewed") == 1
    req.approved_grant.refresh_from_db()
    assert req.approved_grant.revoked_at is None
    assert policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)


def test_the_original_approved_under_a_share_ends_when_its_renewal_ends(case, owner, consultant, radiologist):
    """A review: approved under a share, the share renewed (the approval runs on), then the
    renewal revoked: the original approved under the first share ends with the share it was
    renewed into, however often renewed."""
    grant, _link, _raw = services.share_create(case=case, by=owner, use_case="custom", recipient_kind="user",
                                               grantee=consultant)
    req = services.original_request_create(grant=grant, by=consultant, reason=REASON)
    services.original_request_decide(original_request=req, by=radiologist, approve=True, hours=12)
    req.refresh_from_db()
    renewal, _l2, _r2 = services.grant_renew(grant=grant, by=owner)
    again, _l3, _r3 = services.grant_renew(grant=renewal, by=owner)
    req.approved_grant.refresh_from_db()
    assert req.approved_grant.revoked_at is None  # the renewals carried the share on
    services.grants_revoke(grants=[again], by=owner, reason="revoked by sharer")
    req.approved_grant.refresh_from_db()
    assert req.approved_grant.revoked_at is not None
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)
