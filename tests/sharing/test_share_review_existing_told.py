"""The share review names a recipient's live shares of the case only to whoever may be told of
them (found by review of 59d38ec): an outside consultant holding a ``reshare`` grant, who never
sees "Who has access", learnt by typing any address whether that person held shares of the case,
of what kind and until when. ``policy.grants_told_of``: the shares the sharer may manage
(MANAGE_GRANT), and those they made themselves (My shares lists them)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.sharing import services
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _review(client, case, email) -> str:
    response = client.post(reverse("sharing:case_share", kwargs={"case_id": case.public_id}),
                           {"use_case": UseCase.SECOND_OPINION, "recipient_kind": RecipientKind.EMAIL,
                            "recipient_email": email})
    page = response.content.decode()
    assert response.status_code == 200 and 'name="confirm"' in page, page[:2000]
    return page


def test_a_resharing_consultant_is_told_of_no_share_but_their_own(case, owner, consultant, client_as):
    services.grant_create(case=case, grantee=consultant, by=owner, permissions=["view", "reshare"],
                          expires_at=timezone.now() + timedelta(hours=10))
    colleague = UserFactory(email="colleague@elsewhere.example")
    held, _link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                              recipient_kind=RecipientKind.EMAIL, grantee_email=colleague.email,
                                              hours=24)
    # the owner, who manages the case's shares, is told of it
    page = _review(client_as(owner), case, colleague.email)
    assert f'data-testid="existing-share-{held.public_id}"' in page

    client = client_as(consultant)
    page = _review(client, case, colleague.email)
    assert 'data-testid="existing-shares"' not in page
    assert f"existing-share-{held.public_id}" not in page and "Radiology second opinion”, until" not in page

    # a share the consultant made themselves is theirs to know of (My shares lists it), alone
    mine, _link, _raw = services.share_create(case=case, by=consultant, use_case=UseCase.SECOND_OPINION,
                                              recipient_kind=RecipientKind.EMAIL, grantee_email=colleague.email,
                                              hours=12)
    page = _review(client, case, colleague.email)
    assert f'data-testid="existing-share-{mine.public_id}"' in page
    assert f"existing-share-{held.public_id}" not in page
    assert "This person already has a live share of this case" in page  # one: the owner's is not counted
