"""One request for the original DICOM a person and case, after an extension too (found by review of
a8bf58d): a consultant's request under a share that then ran out waits for nothing, so it does not
stop a new one under another, live share of the case (intended); but once the first share was
extended, its request was back beside the new one: two requests of one person for one case waiting,
both on the deciders' list. Now the new request replaces the one that waited for nothing: closed as
withdrawn (its share had ended), recorded with reason ``superseded`` and the request that replaced
it, and the extension brings nothing back. The extension itself is not refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.sharing import policy, services
from apps.sharing.models import OriginalRequest, OriginalRequestStatus
from tests.factories import GrantFactory

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}
REASON = "Need the thin-slice series to measure."
LATER = "Need the thin slices for the board's measurements."


def _two_shares(case, owner, consultant):
    consult = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                           use_case="consultant", **PREVIEW)
    board = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="tumor_board", **PREVIEW)
    return consult, board


def _run_out(grant) -> None:
    grant.starts_at = timezone.now() - timedelta(days=1)
    grant.expires_at = timezone.now() - timedelta(minutes=1)
    grant.save(update_fields=["starts_at", "expires_at"])


def test_asking_again_under_a_live_share_replaces_the_request_whose_share_ran_out(case, owner, consultant):
    consult, board = _two_shares(case, owner, consultant)
    first = services.original_request_create(grant=consult, by=consultant, reason=REASON)
    _run_out(consult)
    second = services.original_request_create(grant=board, by=consultant, reason=LATER)

    first.refresh_from_db()
    assert first.status == OriginalRequestStatus.WITHDRAWN and first.decided_by is None
    withdrawn = AuditEvent.objects.get(action="original_request.withdrawn", target_id=str(first.public_id))
    assert withdrawn.actor == consultant and withdrawn.organization_id == case.organization_id
    assert withdrawn.details["reason"] == "superseded"
    assert withdrawn.details["superseded_by"] == str(second.public_id)
    assert withdrawn.details["grant"] == str(consult.public_id)
    assert list(OriginalRequest.objects.filter(status="pending")) == [second]


def test_extending_the_share_that_ran_out_leaves_one_request_waiting(case, owner, consultant, client_as):
    consult, board = _two_shares(case, owner, consultant)
    services.original_request_create(grant=consult, by=consultant, reason=REASON)
    _run_out(consult)
    second = services.original_request_create(grant=board, by=consultant, reason=LATER)

    # the sharer gives the first share more time: extended, as asked
    services.grant_extend(grant=consult, by=owner, expires_at=timezone.now() + timedelta(hours=12),
                          reason="The consultant needs another day.")
    consult.refresh_from_db()
    assert consult.is_live()

    # one request of theirs for the case waits: the newer, the one the deciders were shown
    assert list(OriginalRequest.objects.filter(requested_by=consultant, case=case, status="pending")) == [second]
    assert policy.pending_original_requests(consultant, [case.pk])[case.pk] == second
    # the deciders' list shows it once
    page = client_as(owner).get(reverse("sharing:my_shares")).content.decode()
    assert page.count('data-testid="original-request-') == 1
    assert f'data-testid="original-request-{second.public_id}"' in page
    # and neither share offers another request
    assert policy.can_each(consultant, policy.Action.REQUEST_ORIGINAL, [consult, board]) == [False, False]
