"""An approval of a request for the original DICOM lasts what its decider gave (at most the
organization's ``original_approval_max_hours``) and never past the share it was asked under. It is
neither extended nor renewed (``services.grant_extend_refusal``, ``grant_renew_refusal``): more
time is a new request, decided by whoever may decide it. Before (QA), a coordinator, who may not
decide such requests, extended a 24-hour approval to the approval's use-case maximum through the
API, and a renewed approval was nobody's ``approved_grant`` any more, so it outlived the board or
the share it was asked under."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.cases import services as case_services
from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.models import Grant, GrantSource, Notification
from apps.sharing.policy import Action
from tests.factories import member

pytestmark = pytest.mark.django_db


def _share(case, owner, consultant, hours=48):
    """A preview share (custom: renewable, and extendable up to 72 hours) to the consultant."""
    return services.grant_create(case=case, by=owner, grantee=consultant, use_case="custom", permissions=["view"],
                                 renditions=["preview"], expires_at=timezone.now() + timedelta(hours=hours))


def _approve(grant, owner, consultant, hours=24):
    req = services.original_request_create(grant=grant, by=consultant, reason="Need the thin-slice series.")
    return services.original_request_decide(original_request=req, by=owner, approve=True, hours=hours).approved_grant


def _api_extend(client, grant, hours):
    return client.post(f"/api/v1/grants/{grant.public_id}/extend/",
                       json.dumps({"expires_at": (grant.starts_at + timedelta(hours=hours)).isoformat(),
                                   "reason": "A longer review, please."}), content_type="application/json")


def test_an_approval_is_not_extended_by_anyone(org_a, case, owner, consultant, client_as):
    approved = _approve(_share(case, owner, consultant), owner, consultant)
    coordinator = member(org_a, Role.COORDINATOR)
    assert not policy.can(coordinator, Action.DECIDE_ORIGINAL_REQUEST, approved.case)
    assert services.grant_extend_refusal(grant=approved) == services.ExtendRefusal.ORIGINAL

    for who in (coordinator, owner):
        response = _api_extend(client_as(who), approved, 60)
        assert response.status_code == 400, response.content
        assert "a new request must be made and decided" in response.content.decode()
    with pytest.raises(ValidationError) as refused:
        services.grant_extend(grant=approved, by=owner, expires_at=approved.expires_at + timedelta(hours=1),
                              reason="A longer review, please.")
    assert refused.value.code == services.ExtendRefusal.ORIGINAL
    assert Grant.objects.get(pk=approved.pk).expires_at == approved.expires_at


def test_an_approval_is_not_renewed(case, owner, consultant, client_as):
    approved = _approve(_share(case, owner, consultant), owner, consultant)
    assert services.grant_renew_refusal(grant=approved) == services.RenewRefusal.ORIGINAL

    response = client_as(owner).post(f"/api/v1/grants/{approved.public_id}/renew/", json.dumps({}),
                                     content_type="application/json")

    assert response.status_code == 400
    assert "a new request must be made and decided" in response.content.decode()
    assert Grant.objects.get(pk=approved.pk).revoked_at is None
    assert not Grant.objects.filter(renewed_from=approved).exists()


def test_my_shares_offers_neither_extend_nor_renew_on_an_approval(case, owner, consultant, client_as):
    share = _share(case, owner, consultant)
    approved = _approve(share, owner, consultant)
    client = client_as(owner)
    page = client.get(reverse("sharing:my_shares")).content.decode()
    for url in ("sharing:grant_extend", "sharing:grant_renew"):
        assert reverse(url, args=[share.public_id]) in page  # the share's own, still offered
        assert reverse(url, args=[approved.public_id]) not in page
    refused = client.get(reverse("sharing:grant_extend", args=[approved.public_id])).content.decode()
    assert 'data-reason="original"' in refused and 'name="expires_at"' not in refused


def test_a_renewal_refused_leaves_the_approval_to_end_with_its_board(org_a, case, owner, consultant, client_as):
    board = case_services.board_create(organization=org_a, by=owner, host=owner, title="TB",
                                       meeting_at=timezone.now() + timedelta(minutes=5), review_days=7,
                                       cases=[case], participants=[consultant])
    case_services.board_start(board=board, by=owner)
    approved = _approve(Grant.objects.get(case=case, grantee=consultant, source=GrantSource.BOARD), owner,
                        consultant)
    assert client_as(owner).post(f"/api/v1/grants/{approved.public_id}/renew/", json.dumps({}),
                                 content_type="application/json").status_code == 400

    case_services.board_end(board=board, by=owner)

    assert not Grant.objects.filter(case=case, grantee=consultant, revoked_at__isnull=True).exists()
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)


def test_an_approval_ends_no_later_than_the_share_it_was_asked_under(case, owner, consultant, client_as):
    share = _share(case, owner, consultant, hours=4)
    req = services.original_request_create(grant=share, by=consultant, reason="Need the thin-slice series.")
    page = client_as(owner).get(reverse("sharing:original_request_decide", args=[req.public_id])).content.decode()
    assert 'data-testid="share-ends"' in page and "Never past the end of the share it was asked under" in page

    approved = services.original_request_decide(original_request=req, by=owner, approve=True,
                                                 hours=24).approved_grant

    assert approved.expires_at == share.expires_at
    notice = Notification.objects.get(user=consultant, verb="original_request.approved")
    assert notice.message == "Your request for the original DICOM was approved until the share it was asked under ends."


def test_an_approval_shorter_than_its_share_lasts_the_hours_given(case, owner, consultant):
    share = _share(case, owner, consultant, hours=48)
    approved = _approve(share, owner, consultant, hours=24)
    assert timedelta(hours=23, minutes=59) < approved.expires_at - timezone.now() <= timedelta(hours=24)
    notice = Notification.objects.get(user=consultant, verb="original_request.approved")
    assert notice.message == "Your request for the original DICOM was approved for 24 hours."


def test_a_renewal_of_an_approval_made_before_it_was_refused_ends_with_the_share(case, owner, consultant):
    """Renewals of approvals made before ``grant_renew_refusal`` refused them are nobody's
    ``approved_grant``: revoking the share asked under follows the renewals too."""
    share = _share(case, owner, consultant)
    approved = _approve(share, owner, consultant)
    renewed = approved
    for _ in range(2):  # as grant_renew made them: a new grant, then the old one revoked "renewed"
        before = renewed
        renewed = services.grant_create(case=case, by=owner, grantee=consultant, use_case=before.use_case,
                                        permissions=before.permissions, renditions=before.renditions,
                                        expires_at=before.expires_at, source=GrantSource.ORIGINAL_REQUEST,
                                        renewed_from=before)
        services.grants_revoke(grants=[before], by=owner, reason="renewed")
    assert policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)

    assert services.grants_revoke(grants=[share], by=owner, reason="revoked by sharer") == 2

    renewed.refresh_from_db()
    assert renewed.revoked_at is not None and renewed.revoke_reason == "revoked by sharer"
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)
