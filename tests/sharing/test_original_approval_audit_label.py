"""The access an approved request for the original DICOM gives reads as the approval it is in the
audit trail and in the case page's history, not as "Access granted (shared)", a second share
identical to the one it was asked under (found by QA; the lists name it so already, 98d46b8,
``Grant.purpose_label``). One mechanism: the event's ``details.source``
(``apps.audit.actions.event_label``), as for a tumor board meeting's grants."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import GrantSource
from tests.audit.test_page import _visible_cells
from tests.factories import member

pytestmark = pytest.mark.django_db

APPROVED = "Original DICOM access approved"
SHARED = "Access granted (shared)"


@pytest.fixture
def approval(case, owner, consultant):
    grant = services.grant_create(case=case, by=owner, grantee=consultant, use_case="custom", permissions=["view"],
                                  renditions=["preview"], expires_at=timezone.now() + timedelta(hours=48))
    req = services.original_request_create(grant=grant, by=consultant, reason="Need the thin-slice series.")
    return services.original_request_decide(original_request=req, by=owner, approve=True, hours=12).approved_grant


def _grant_events(grant):
    return AuditEvent.objects.filter(action=actions.GRANT_CREATED, target_id=str(grant.public_id))


def test_the_approvals_grant_event_is_labelled_as_the_approval(approval, case):
    shared, approved = AuditEvent.objects.filter(action=actions.GRANT_CREATED, case_ref=case.public_id).order_by("seq")
    assert approved.details["source"] == GrantSource.ORIGINAL_REQUEST == approval.source
    assert actions.event_label(approved.action, approved.details) == APPROVED
    assert actions.event_label(shared.action, shared.details) == SHARED  # the share it was asked under: as before


def test_the_audit_page_and_the_case_history_say_so(approval, case, owner, org_a, client_as):
    admin = member(org_a, Role.ORG_ADMIN)
    trail = client_as(admin).get(reverse("audit:event_list"), {"case": str(case.public_id)}).content.decode()
    shown = [row[2] for row in _visible_cells(trail)]  # the action cells (label, then code), newest first
    assert f"{APPROVED}{actions.GRANT_CREATED}" in shown and f"{SHARED}{actions.GRANT_CREATED}" in shown
    page = client_as(owner).get(reverse("cases:case_detail", kwargs={"case_id": case.public_id}))
    history = page.content.decode().split('id="history"', 1)[1]
    assert history.count(APPROVED) == 1 and history.count(SHARED) == 1
