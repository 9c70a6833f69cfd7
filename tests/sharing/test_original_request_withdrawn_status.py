"""A request for the original DICOM withdrawn because its share ended shows as "Withdrawn (the
share ended)" wherever its status is shown: the requester's "Shared with me", the decider's page.

Before (bdcad00), it was closed as "declined" with no decider: the consultant's "Shared with me"
showed only the share as Revoked, with nothing about the request, and the decider's page gave
the status "Declined" for a request nobody declined. It now has its own status, ``withdrawn``;
a request a decider declined still reads "Declined"."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.urls import reverse
from django.utils import timezone

from apps.audit.services import record
from apps.sharing import services
from apps.sharing.models import OriginalRequest, OriginalRequestStatus

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}
REASON = "Need the thin-slice series to measure."
WITHDRAWN = "Withdrawn (the share ended)"


def _request(case, owner, consultant):
    grant = services.grant_create(case=case, grantee=consultant, by=owner,
                                  expires_at=timezone.now() + timedelta(hours=10), **PREVIEW)
    return grant, services.original_request_create(grant=grant, by=consultant, reason=REASON)


def _decide_page(client, req):
    url = reverse("sharing:original_request_decide", kwargs={"originalrequest_id": req.public_id})
    return client.get(url).content.decode()


def test_a_request_withdrawn_with_its_share_says_so_to_requester_and_decider(
        case, owner, consultant, radiologist, client_as):
    grant, req = _request(case, owner, consultant)
    services.grants_revoke(grants=[grant], by=owner, reason="revoked by sharer")
    req.refresh_from_db()
    assert req.status == OriginalRequestStatus.WITHDRAWN and req.decided_by is None
    assert req.get_status_display() == WITHDRAWN

    mine = client_as(consultant).get(reverse("sharing:shared_with_me")).content.decode()
    assert 'data-testid="original-request-withdrawn"' in mine and WITHDRAWN in mine

    page = _decide_page(client_as(radiologist), req)
    assert f'<dd data-testid="status">{WITHDRAWN}</dd>' in page
    assert ">Declined<" not in page
    assert 'data-testid="request-withdrawn"' in page  # the explanation line stays


def test_a_request_a_decider_declined_still_reads_declined(case, owner, consultant, radiologist, client_as):
    _grant, req = _request(case, owner, consultant)
    services.original_request_decide(original_request=req, by=radiologist, approve=False, hours=12)
    req.refresh_from_db()
    assert req.status == OriginalRequestStatus.DECLINED
    page = _decide_page(client_as(radiologist), req)
    assert '<dd data-testid="status">Declined</dd>' in page
    assert WITHDRAWN not in page and 'data-testid="request-withdrawn"' not in page
    mine = client_as(consultant).get(reverse("sharing:shared_with_me")).content.decode()
    assert 'data-testid="original-request-declined"' in mine and WITHDRAWN not in mine


def test_the_migration_marks_withdrawn_only_the_requests_recorded_as_withdrawn(case, owner, consultant):
    """Rows bdcad00 closed as declined with no decider become withdrawn: those its audit event
    names. A declined request whose decider's account is gone (no decider either) stays declined."""
    migration = importlib.import_module("apps.sharing.migrations.0010_originalrequest_withdrawn")
    now = timezone.now()
    _g1, withdrawn = _request(case, owner, consultant)
    # closed before the second is asked: one request a person and case waits at a time
    OriginalRequest.objects.filter(pk=withdrawn.pk).update(status="declined", decided_by=None, decided_at=now)
    _g2, declined = _request(case, owner, consultant)
    OriginalRequest.objects.filter(pk=declined.pk).update(status="declined", decided_by=None, decided_at=now)
    record(action="original_request.withdrawn", actor=owner, organization_id=case.organization_id,
           target=withdrawn, case=case, details={"reason": "revoked by sharer"})

    migration.withdrawn_forward(django_apps, None)
    withdrawn.refresh_from_db()
    declined.refresh_from_db()
    assert (withdrawn.status, declined.status) == ("withdrawn", "declined")

    migration.withdrawn_backward(django_apps, None)
    withdrawn.refresh_from_db()
    assert withdrawn.status == "declined"
