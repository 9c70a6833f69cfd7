"""A share that no later expiry is possible for is not offered Extend, and its extension page
says why instead of showing a form that cannot succeed (QA: a tumor board share at its maximum
showed "Expires now" and "Latest possible" the same minute, and every date then failed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import Grant, GrantSource
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import GrantFactory, member

pytestmark = pytest.mark.django_db


def _board_share(case, owner, consultant):
    """A tumor board share made with its template's default, which is its maximum (7 days)."""
    grant, _link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.TUMOR_BOARD,
                                               recipient_kind=RecipientKind.USER, grantee=consultant)
    assert grant.expires_at == services.grant_extend_ceiling(grant=grant)
    return grant


def _second_opinion(case, owner, consultant):
    grant, _link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                               recipient_kind=RecipientKind.USER, grantee=consultant, hours=48)
    return grant


def _extend_url(grant):
    return reverse("sharing:grant_extend", kwargs={"grant_id": grant.public_id})


def test_my_shares_offers_extend_only_where_a_later_expiry_is_possible(client_as, case, owner, consultant):
    at_max = _board_share(case, owner, consultant)
    shorter = _second_opinion(case, owner, consultant)
    page = client_as(owner).get(reverse("sharing:my_shares")).content.decode()
    assert _extend_url(shorter) in page
    assert _extend_url(at_max) not in page


def test_the_extension_page_of_a_share_at_its_maximum_says_why_and_shows_no_form(client_as, case, owner,
                                                                                 consultant):
    grant = _board_share(case, owner, consultant)
    client = client_as(owner)
    response = client.get(_extend_url(grant))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="extend-refused"' in page and 'data-reason="at_maximum"' in page
    assert "already at its longest" in page and "168 hours" in page
    assert 'name="expires_at"' not in page and 'name="reason"' not in page
    later = (grant.expires_at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    refused = client.post(_extend_url(grant), {"expires_at": later, "reason": "The board moved a day."})
    assert refused.status_code == 400 and 'data-reason="at_maximum"' in refused.content.decode()
    assert Grant.objects.get(pk=grant.pk).expires_at == grant.expires_at


def test_the_extension_page_still_offers_the_form_below_the_maximum(client_as, case, owner, consultant):
    grant = _second_opinion(case, owner, consultant)
    page = client_as(owner).get(_extend_url(grant)).content.decode()
    assert 'name="expires_at"' in page and 'data-testid="extend-refused"' not in page


def test_the_service_refuses_a_share_at_its_maximum_with_the_same_reason(case, owner, consultant):
    grant = _board_share(case, owner, consultant)
    assert services.grant_extend_refusal(grant=grant) == services.ExtendRefusal.AT_MAXIMUM
    with pytest.raises(ValidationError) as refused:
        services.grant_extend(grant=grant, by=owner, expires_at=grant.expires_at + timedelta(minutes=1),
                              reason="The board moved a day.")
    assert refused.value.code == services.ExtendRefusal.AT_MAXIMUM
    assert services.grant_extend_refusal(grant=_second_opinion(case, owner, consultant)) is None


@pytest.mark.parametrize("short_by", [timedelta(microseconds=400), timedelta(seconds=59)])
def test_a_share_whose_expiry_was_worked_out_a_moment_before_its_start_is_at_its_maximum(
        client_as, case, owner, consultant, short_by):
    """A renewal, an invitation's hand-off and the demo's shares work out the expiry a moment
    before the start is stamped: the ceiling is then a fraction later than the expiry. No minute
    the extension page takes lies between them, so no Extend is offered (QA: it was, and every
    date was refused)."""
    grant = _second_opinion(case, owner, consultant)
    Grant.objects.filter(pk=grant.pk).update(expires_at=services.grant_extend_ceiling(grant=grant) - short_by)
    grant.refresh_from_db()
    assert services.grant_extend_refusal(grant=grant) == services.ExtendRefusal.AT_MAXIMUM
    assert _extend_url(grant) not in client_as(owner).get(reverse("sharing:my_shares")).content.decode()
    Grant.objects.filter(pk=grant.pk).update(
        expires_at=services.grant_extend_ceiling(grant=grant) - timedelta(minutes=2))
    grant.refresh_from_db()
    assert services.grant_extend_refusal(grant=grant) is None


def test_a_tumor_boards_own_grant_is_not_offered_extend(client_as, case, owner, org_a):
    """board_start's grants last the board's review window (5-7 days), past their kind's maximum:
    the page showed a "Latest possible" before "Expires now"."""
    guest = member(org_a, Role.EXTERNAL_CONSULTANT)
    grant = GrantFactory(organization=org_a, case=case, grantee=guest, created_by=owner, source=GrantSource.BOARD,
                         expires_at=case.created_at + timedelta(days=7) + timedelta(days=3650))
    assert services.grant_extend_refusal(grant=grant) == services.ExtendRefusal.BOARD
    client = client_as(owner)
    assert _extend_url(grant) not in client.get(reverse("sharing:my_shares")).content.decode()
    assert 'data-reason="board"' in client.get(_extend_url(grant)).content.decode()



def test_an_expired_share_is_extended_only_to_a_time_to_come(client_as, case, owner, consultant):
    """QA: an expired share whose latest possible expiry had passed too (reached by its address:
    My shares offers no Extend there) showed a form, and "extended" the share to a time already
    past, recorded. Its page says why instead; an expired share whose ceiling is still to come is
    extended (it is not revoked), but only to a time to come."""
    from django.utils import timezone

    grant = _second_opinion(case, owner, consultant)
    now = timezone.now()
    Grant.objects.filter(pk=grant.pk).update(starts_at=now - timedelta(hours=100), expires_at=now - timedelta(hours=60))
    grant.refresh_from_db()
    assert services.grant_extend_ceiling(grant=grant) < now
    assert services.grant_extend_refusal(grant=grant) == services.ExtendRefusal.AT_MAXIMUM
    client = client_as(owner)
    page = client.get(_extend_url(grant)).content.decode()
    assert 'data-reason="at_maximum"' in page and 'name="expires_at"' not in page
    latest = services.grant_extend_ceiling(grant=grant).strftime("%Y-%m-%dT%H:%M")
    refused = client.post(_extend_url(grant), {"expires_at": latest, "reason": "The consultant needs a day."})
    assert refused.status_code == 400 and Grant.objects.get(pk=grant.pk).expires_at == grant.expires_at

    # its ceiling still to come: a time past is refused, a time to come extends it
    Grant.objects.filter(pk=grant.pk).update(starts_at=now - timedelta(hours=10), expires_at=now - timedelta(hours=2))
    grant.refresh_from_db()
    assert services.grant_extend_refusal(grant=grant) is None
    with pytest.raises(ValidationError) as past:
        services.grant_extend(grant=grant, by=owner, expires_at=now - timedelta(hours=1), reason="The board moved.")
    assert "in the future" in str(past.value)
    services.grant_extend(grant=grant, by=owner, expires_at=now + timedelta(hours=5), reason="The board moved.")
    assert Grant.objects.get(pk=grant.pk).expires_at > now
