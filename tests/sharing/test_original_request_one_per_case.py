"""One request for the original DICOM a person and case (found by QA): a consultant whose request
under one share of a case waited for a decision, given another share of the same case (a tumor
board's), was offered "Request the original DICOM" again and a second request went through; the
deciders then saw two identical entries ("consultant@... on 'Brain MR - tumor board review'").
With two live shares of one case the shared case showed two identical buttons. Now: the policy's
PENDING is per person and case, the second request is refused and told which one waits, the page
offers one button and says "Request pending" while one waits, and the deciders' list says which
share each request was made under and when."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apps.sharing import policy, services
from apps.sharing.models import OriginalRequest
from apps.sharing.policy import Action, OriginalRefusal
from tests.factories import GrantFactory
from tests.threads import in_thread_until_blocked

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}
REASON = "Need the thin-slice series to measure."


def _two_shares(case, owner, consultant):
    consult = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                           use_case="consultant", **PREVIEW)
    board = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="tumor_board", **PREVIEW)
    return consult, board


@pytest.mark.django_db
def test_a_second_share_of_the_case_does_not_take_a_second_request(case, owner, consultant):
    consult, board = _two_shares(case, owner, consultant)
    services.original_request_create(grant=consult, by=consultant, reason=REASON)

    assert policy.original_request_refusal(consultant, board) is OriginalRefusal.PENDING
    assert policy.can_each(consultant, Action.REQUEST_ORIGINAL, [consult, board]) == [False, False]
    with pytest.raises(ValidationError) as refused:
        services.original_request_create(grant=board, by=consultant, reason="Another reason for the board.")
    # told which request waits: under which share it was made
    assert "already asked" in str(refused.value) and "External consultant handoff" in str(refused.value)
    assert OriginalRequest.objects.count() == 1


@pytest.mark.django_db
def test_another_persons_request_or_another_case_changes_nothing(case, owner, consultant, org_a):
    from tests.factories import CaseFactory

    consult, _board = _two_shares(case, owner, consultant)
    other_case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)
    elsewhere = GrantFactory(organization=org_a, case=other_case, grantee=consultant, created_by=owner, **PREVIEW)
    services.original_request_create(grant=consult, by=consultant, reason=REASON)
    assert policy.original_request_refusal(consultant, elsewhere) is None


@pytest.mark.django_db
def test_a_request_under_a_share_that_expired_does_not_stop_one_under_a_live_share(case, owner, consultant):
    """Only a request that may still be decided waits: one under a share that ran out (not
    revoked, so not withdrawn) is decided by nobody until that share is extended. The new one
    replaces it (tests/sharing/test_original_request_superseded.py)."""
    consult, board = _two_shares(case, owner, consultant)
    services.original_request_create(grant=consult, by=consultant, reason=REASON)
    consult.expires_at = timezone.now() - timedelta(minutes=1)
    consult.starts_at = timezone.now() - timedelta(days=1)
    consult.save(update_fields=["expires_at", "starts_at"])
    assert policy.original_request_refusal(consultant, board) is None
    new = services.original_request_create(grant=board, by=consultant, reason=REASON)
    assert list(OriginalRequest.objects.filter(status="pending")) == [new]


@pytest.mark.django_db
def test_the_shared_case_offers_one_button_then_says_request_pending(case, owner, consultant, client_as):
    consult, board = _two_shares(case, owner, consultant)
    client = client_as(consultant)
    case_url = reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    page = client.get(case_url).content.decode()
    assert page.count('data-testid="request-original"') == 1  # not one a share

    assert client.post(reverse("sharing:original_request_create", kwargs={"grant_id": consult.public_id}),
                       {"reason": REASON}).status_code == 302
    page = client.get(case_url).content.decode()
    assert 'data-testid="request-original"' not in page
    assert page.count('data-testid="original-request-pending"') == 1
    assert page.count('data-testid="original-request-pending-badge"') == 1 and "Request pending" in page

    # the other share's form sends them back, told which request waits; its submit is refused
    board_form = reverse("sharing:original_request_create", kwargs={"grant_id": board.public_id})
    response = client.get(board_form, follow=True)
    assert response.redirect_chain == [(case_url, 302)]
    assert "already asked" in response.content.decode()
    assert "External consultant handoff" in response.content.decode()
    response = client.post(board_form, {"reason": "Another reason for the board."})
    assert response.status_code == 400 and "already asked" in response.content.decode()
    assert OriginalRequest.objects.count() == 1

    # Shared with me: each share of the case says a request waits, none offers another
    mine = client.get(reverse("sharing:shared_with_me")).content.decode()
    assert mine.count('data-testid="original-request-pending"') == 2
    assert 'data-testid="request-original"' not in mine


@pytest.mark.django_db
def test_the_deciders_list_says_which_share_and_when(case, owner, consultant, client_as):
    consult, _board = _two_shares(case, owner, consultant)
    req = services.original_request_create(grant=consult, by=consultant, reason=REASON)
    page = client_as(owner).get(reverse("sharing:my_shares")).content.decode()
    row = page.split(f'data-testid="original-request-{req.public_id}"', 1)[1].split("</li>", 1)[0]
    assert "External consultant handoff" in row and "asked on" in row
    decide = client_as(owner).get(reverse("sharing:original_request_decide",
                                          kwargs={"originalrequest_id": req.public_id})).content.decode()
    assert 'data-testid="asked-under"' in decide and "External consultant handoff" in decide


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
def test_two_requests_at_once_under_two_shares_make_one(case, owner, consultant, monkeypatch):
    """Two submits at once under two shares of one case (two tabs): each locked its own grant's
    row only, so neither waited for the other. The case's row is locked first."""
    consult, board = _two_shares(case, owner, consultant)
    real_record, failures, threads, started = services.record, [], [], []

    def record(**kwargs):  # the first request is written, not committed: the second one starts now
        if kwargs.get("action") == "original_request.created" and not started:
            started.append(True)
            threads.append(in_thread_until_blocked(failures, services.original_request_create, grant=board,
                                                   by=consultant, reason=REASON))
        return real_record(**kwargs)

    monkeypatch.setattr(services, "record", record)
    services.original_request_create(grant=consult, by=consultant, reason=REASON)
    threads[0].join(timeout=30)
    assert OriginalRequest.objects.count() == 1
    assert len(failures) == 1 and isinstance(failures[0], ValidationError)
    assert "already asked" in str(failures[0])
