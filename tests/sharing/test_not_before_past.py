"""A link's "not before" in the past is refused, and a link that opens later says when. QA typed
2001-01-01 into "Not before" and the share was made without a word (the link opened at once), and
the not-yet page said "try again at the time you were given" without the time."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import formats, timezone

from apps.core.middleware import TIME_ZONE_COOKIE
from apps.sharing import services
from apps.sharing.models import Grant, ShareLink
from apps.sharing.usecases import RecipientKind, UseCase

pytestmark = pytest.mark.django_db

PAST = "in the past"


def _review(client, case, **fields):
    """The share page's first step (the review), which refuses what creating would refuse."""
    return client.post(reverse("sharing:case_share", kwargs={"case_id": case.public_id}),
                       {"use_case": "second_opinion", "recipient_kind": "user", **fields})


def test_the_share_form_refuses_a_not_before_in_the_past_beside_the_field(client_as, case, owner, consultant):
    response = _review(client_as(owner), case, recipient_email=consultant.email, not_before="2001-01-01T00:00")
    assert response.status_code == 400
    assert PAST in " ".join(response.context["form"].errors["not_before"])
    assert not Grant.objects.exists()


def test_the_share_form_takes_a_not_before_ahead(client_as, case, owner, consultant):
    later = timezone.localtime(timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = _review(client_as(owner), case, recipient_email=consultant.email, not_before=later)
    assert response.status_code == 200 and "not_before" not in response.context["form"].errors


def test_share_create_and_the_api_refuse_a_not_before_in_the_past(client_as, case, owner, consultant):
    with pytest.raises(ValidationError) as refused:
        services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                              recipient_kind=RecipientKind.USER, grantee=consultant,
                              not_before=timezone.now() - timedelta(days=1))
    assert refused.value.code == "not_before"
    response = client_as(owner).post("/api/v1/grants/", {
        "case": str(case.public_id), "use_case": "second_opinion", "recipient_kind": "user",
        "recipient_email": consultant.email, "not_before": "2001-01-01T00:00:00Z"}, content_type="application/json")
    assert response.status_code == 400 and "not_before" in response.json()
    assert not Grant.objects.exists() and not ShareLink.objects.exists()


def test_a_not_before_of_the_minute_typed_is_taken_as_now(case, owner, consultant):
    """A datetime-local field has no seconds: "now", typed, is up to a minute ago."""
    grant, link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                              recipient_kind=RecipientKind.USER, grantee=consultant,
                                              not_before=timezone.now() - timedelta(seconds=59))
    assert grant.starts_at >= link.not_before


def test_the_not_yet_page_shows_when_the_link_opens_in_the_readers_time_zone(case, owner, consultant):
    opens = (timezone.now() + timedelta(days=3)).replace(second=0, microsecond=0)
    _grant, _link, raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                               recipient_kind=RecipientKind.USER, grantee=consultant,
                                               not_before=opens)
    client = Client()
    client.force_login(consultant)
    client.cookies[TIME_ZONE_COOKIE] = "Asia/Tokyo"
    response = client.get(reverse("sharing:link_open", kwargs={"token": raw}))
    page = response.content.decode()
    assert response.status_code == 403 and 'data-reason="not_yet"' in page
    shown = formats.date_format(timezone.localtime(opens, ZoneInfo("Asia/Tokyo")), "SHORT_DATETIME_FORMAT")
    assert 'data-testid="link-opens-at"' in page
    assert f"does not open before {shown} (Asia/Tokyo time)" in page
