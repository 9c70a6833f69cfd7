"""Asking for the original DICOM is decided again under the case's lock, on the whole rule (found by
review of 5d75554): the submit checks the policy before it takes the lock, and under the lock only
asked again whether a request waited. A consultant whose request ran out with its share asks again
under a tumor board's share; between that check and the lock the sharer extends the first share
and a decider approves the first request. The submit then made a second request that waited
beside the approved one, and approving it too gave the original twice. Now the lock's check is
the submit's: told they can download the original already, nothing made. The window is simulated
by running the steps in order, the submit's locked part last."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import denials_kept
from apps.sharing import policy, services
from apps.sharing.models import Grant, OriginalRequest
from tests.sharing.test_original_request_superseded import LATER, REASON, _run_out, _two_shares

pytestmark = pytest.mark.django_db


def _submit_after_its_check(grant, by):
    """The submit's part under the case's lock, as ``original_request_create`` runs it once its
    own check (made before the lock) passed."""
    with transaction.atomic():
        return services._original_request_create(grant=grant, by=by, reason=LATER, request=None)


def test_an_approval_landing_before_the_lock_refuses_the_new_request(case, owner, consultant):
    consult, board = _two_shares(case, owner, consultant)
    first = services.original_request_create(grant=consult, by=consultant, reason=REASON)
    _run_out(consult)
    # the submit under the board's share passes the check made before the lock ...
    assert policy.original_request_refusal(consultant, board) is None
    # ... meanwhile the sharer extends the first share and a decider approves its request
    services.grant_extend(grant=consult, by=owner, expires_at=timezone.now() + timedelta(hours=12),
                          reason="The consultant needs another day.")
    services.original_request_decide(original_request=first, by=owner, approve=True)
    def originals():
        return [g for g in Grant.objects.filter(case=case, grantee=consultant) if "download_original" in g.permissions]
    assert len(originals()) == 1

    # ... then the submit takes the lock: told as the check before it tells, nothing made
    with pytest.raises(ValidationError) as refused:
        _submit_after_its_check(board, consultant)
    assert refused.value.messages == ["You can already download the original DICOM."]
    assert list(OriginalRequest.objects.filter(requested_by=consultant).values_list("pk", "status")) == [
        (first.pk, "approved")]
    assert not AuditEvent.objects.filter(action="original_request.created", details__grant=str(board.public_id))
    assert len(originals()) == 1


def test_a_revocation_landing_before_the_lock_refuses_the_new_request(case, owner, consultant):
    _consult, board = _two_shares(case, owner, consultant)
    assert policy.original_request_refusal(consultant, board) is None
    # the board's share is revoked between the submit's check and its lock (the submit holds the
    # share as it read it, still live)
    services.grants_revoke(grants=[Grant.objects.get(pk=board.pk)], by=owner, reason="Wrong board.")

    with denials_kept(), pytest.raises(PermissionDenied):  # as around a request
        _submit_after_its_check(board, consultant)
    assert not OriginalRequest.objects.exists()
    assert AuditEvent.objects.filter(action="access.denied", actor=consultant,
                                     details__wanted="request_original").exists()
