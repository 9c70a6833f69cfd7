"""An anonymous link opened as many times as its use limit allows says so wherever its state is
shown (found by QA: after its 3 openings a 4th visitor was told it was used up, while My shares
said "Active" and offered Extend). One place decides it (``Grant.state``): My shares, the API.
Extend is not offered (it keeps the link's count: nobody new could open it), Renew is (a fresh
link with the same limit), and Revoke still ends what the browsers that opened it hold."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.sharing import services
from apps.sharing.models import GrantState
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import open_anonymous_link

pytestmark = pytest.mark.django_db


def _anonymous(case, owner, **kwargs):
    case.organization.anonymous_links_enabled = True
    case.organization.save()
    return services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                 recipient_kind=RecipientKind.ANONYMOUS, **kwargs)


def _row(html: str, grant) -> str:
    return re.search(rf'<tr[^>]*data-grant="{grant.public_id}"[^>]*>(.*?)</tr>', html, flags=re.S).group(1)


def test_a_used_up_anonymous_link_reads_use_limit_reached_and_offers_renew_not_extend(case, owner, client_as):
    grant, _link, raw = _anonymous(case, owner, max_uses=3, hours=4)
    for _visitor in range(3):
        assert open_anonymous_link(Client(), raw).status_code == 302
    assert open_anonymous_link(Client(), raw).status_code == 403  # the 4th: used the maximum number of times
    grant.refresh_from_db()
    assert grant.state() == GrantState.USE_LIMIT_REACHED
    client = client_as(owner)
    row = _row(client.get(reverse("sharing:my_shares")).content.decode(), grant)
    assert "state-use_limit_reached" in row and "Use limit reached" in row and "Active" not in row
    assert reverse("sharing:grant_extend", kwargs={"grant_id": grant.public_id}) not in row
    assert reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id}) in row
    assert reverse("sharing:grant_revoke", kwargs={"grant_id": grant.public_id}) in row
    # the API says the same state
    api = client.get(f"/api/v1/grants/{grant.public_id}/")
    assert api.status_code == 200 and api.json()["state"] == "use_limit_reached"
    # extending would keep the count: refused, in words (the page explains it, the service refuses)
    assert services.grant_extend_refusal(grant=grant) == services.ExtendRefusal.USED_UP
    with pytest.raises(ValidationError) as refused:
        services.grant_extend(grant=grant, by=owner, expires_at=grant.expires_at + timedelta(hours=1),
                              reason="They need a little more time")
    assert refused.value.code == services.ExtendRefusal.USED_UP
    # revoking it is still asked (the browsers that opened it hold it until it expires)
    confirm = client.get(reverse("sharing:grant_revoke", kwargs={"grant_id": grant.public_id}))
    assert confirm.status_code == 200
    # the renewal is a fresh link with the same limit: active again
    new, new_link, _raw = services.grant_renew(grant=grant, by=owner)
    assert new_link.max_uses == 3 and new_link.use_count == 0
    assert new.state() == GrantState.ACTIVE


def test_a_link_with_openings_left_or_no_limit_stays_active(case, owner):
    limited, _link, raw = _anonymous(case, owner, max_uses=3, hours=4)
    unlimited, _link2, raw2 = _anonymous(case, owner)
    for _visitor in range(2):
        open_anonymous_link(Client(), raw)
        open_anonymous_link(Client(), raw2)
    assert limited.state() == GrantState.ACTIVE and unlimited.state() == GrantState.ACTIVE
    assert services.grant_extend_refusal(grant=limited) is None


def test_a_named_persons_link_used_up_does_not_end_their_share(case, owner, consultant, client_as):
    """A named recipient reaches their share from Shared with me, not only by its link."""
    grant, _link, raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                              recipient_kind=RecipientKind.USER, grantee=consultant, max_uses=1)
    reader = client_as(consultant)
    assert reader.get(reverse("sharing:link_open", kwargs={"token": raw})).status_code == 302
    grant.refresh_from_db()
    assert grant.state() == GrantState.ACTIVE


def test_an_expired_or_revoked_used_up_link_says_that_instead(case, owner):
    grant, _link, raw = _anonymous(case, owner, max_uses=1)
    open_anonymous_link(Client(), raw)
    grant.refresh_from_db()
    assert grant.state() == GrantState.USE_LIMIT_REACHED
    assert grant.state(timezone.now() + timedelta(days=2)) == GrantState.EXPIRED_USED
    services.grants_revoke(grants=[grant], by=owner, reason="revoked by sharer")
    grant.refresh_from_db()
    assert grant.state() == GrantState.REVOKED

