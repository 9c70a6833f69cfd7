"""An extension past the organization's maximum names only a way on that the sharer has for that
share (QA: a "Radiology second opinion" share was told "Renew it for a new review cycle instead",
but My shares offers only Revoke and Extend for it), and the extension page has a way back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from apps.sharing import services
from apps.sharing.models import Grant
from apps.sharing.usecases import RecipientKind, UseCase

pytestmark = pytest.mark.django_db


def _share(case, owner, grantee, use_case, hours):
    grant, _link, _raw = services.share_create(case=case, by=owner, use_case=use_case,
                                               recipient_kind=RecipientKind.USER, grantee=grantee, hours=hours)
    return grant


def _extend_past_ceiling(client, grant):
    past = services.grant_extend_ceiling(grant=grant) + timedelta(hours=2)
    return client.post(reverse("sharing:grant_extend", kwargs={"grant_id": grant.public_id}),
                       {"expires_at": timezone.localtime(past).strftime("%Y-%m-%dT%H:%M"),
                        "reason": "The second reader is away until Monday."})


def test_a_second_opinion_share_is_told_the_latest_date_and_a_new_share_not_renew(client_as, case, owner,
                                                                                 radiologist):
    grant = _share(case, owner, radiologist, UseCase.SECOND_OPINION, 48)
    client = client_as(owner)
    shares = client.get(reverse("sharing:my_shares")).content.decode()
    assert reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id}) not in shares  # not offered
    response = _extend_past_ceiling(client, grant)
    assert response.status_code == 400
    page = response.content.decode()
    assert "past the organization" in page
    assert "Renew" not in page
    assert "create a new share" in page
    latest = date_format(timezone.localtime(services.grant_extend_ceiling(grant=grant)), "SHORT_DATETIME_FORMAT")
    assert latest in page
    assert Grant.objects.get(pk=grant.pk).expires_at == grant.expires_at


def test_a_renewable_share_is_told_to_renew_it(client_as, case, owner, radiologist):
    grant = _share(case, owner, radiologist, UseCase.CUSTOM, 24)
    client = client_as(owner)
    shares = client.get(reverse("sharing:my_shares")).content.decode()
    assert reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id}) in shares  # offered there
    page = _extend_past_ceiling(client, grant).content.decode()
    assert "Renew it for a new review cycle instead." in page


def test_the_extension_page_has_a_cancel_link_back_to_the_share_in_my_shares(client_as, case, owner, radiologist):
    grant = _share(case, owner, radiologist, UseCase.SECOND_OPINION, 48)
    page = client_as(owner).get(reverse("sharing:grant_extend", kwargs={"grant_id": grant.public_id})).content.decode()
    row = reverse("sharing:my_shares") + f"#share-{grant.public_id}"
    assert f'href="{row}" data-testid="extend-cancel"' in page


def _extend_page(client, grant) -> str:
    response = client.get(reverse("sharing:grant_extend", kwargs={"grant_id": grant.public_id}))
    assert response.status_code == 200
    return response.content.decode()


def test_the_extension_page_of_a_share_never_renewable_says_a_new_share_is_needed(client_as, case, owner,
                                                                                radiologist):
    # found by review: the page's help told every sharer to "renew the share instead (a fresh
    # link)", where My shares offers no Renew for a second opinion
    grant = _share(case, owner, radiologist, UseCase.SECOND_OPINION, 48)
    page = _extend_page(client_as(owner), grant)
    assert "renew the share instead" not in page
    assert ("It can never pass the organization's maximum. This share cannot be renewed: for more time "
            "after that, create a new share.") in page


def test_the_extension_page_of_a_renewable_share_names_renew(client_as, case, owner, radiologist):
    grant = _share(case, owner, radiologist, UseCase.CUSTOM, 24)
    page = _extend_page(client_as(owner), grant)
    assert "for a new review cycle, renew the share instead (a fresh link)." in page
    assert "This share cannot be renewed" not in page
