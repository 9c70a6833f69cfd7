"""Shared with me names an ended share's case as it was while its holder had access, not by the
title the case was given after (found by review): a renamed case's new title, which may name the
patient, is not for someone whose share ended, as a notice names its case only while it is seen
(``policy.notices_naming``). A live share's row names the case as it is now."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.cases import services as case_services
from apps.sharing import services
from apps.sharing.services import grant_create

pytestmark = pytest.mark.django_db

OLD, NEW, NEWER = "Chest CT follow-up", "Chest CT - Jane Roe", "Chest CT - Jane Roe, left lobe"


def _case_cells(client) -> list[str]:
    html = client.get(reverse("sharing:shared_with_me")).content.decode()
    return [re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r'<td[^>]*data-testid="received-case"[^>]*>(.*?)</td>', html, flags=re.S)]


def _share(case, owner, consultant, **kwargs):
    return grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                        expires_at=timezone.now() + timedelta(days=2), **kwargs)


def _rename(case, owner, title):
    case.refresh_from_db()
    case_services.case_update(case=case, by=owner, values={"title": title})


def _run_out(grant) -> None:
    grant.starts_at = timezone.now() - timedelta(days=1)
    grant.expires_at = timezone.now() - timedelta(minutes=1)
    grant.save(update_fields=["starts_at", "expires_at"])


@pytest.fixture
def titled(case):
    case.title = OLD
    case.save(update_fields=["title"])
    return case


def test_a_revoked_share_names_the_case_as_it_was_before_the_rename(titled, owner, consultant, client_as):
    grant = _share(titled, owner, consultant)
    services.grants_revoke(grants=[grant], by=owner, reason="manual")
    _rename(titled, owner, NEW)
    assert _case_cells(client_as(consultant)) == [OLD]
    assert NEW not in client_as(consultant).get(reverse("sharing:shared_with_me")).content.decode()


def test_a_share_that_ran_out_keeps_the_title_it_ended_with_through_later_renames(titled, owner, consultant,
                                                                                   client_as):
    grant = _share(titled, owner, consultant)
    _rename(titled, owner, NEW)  # while it is live: they see it renamed
    _run_out(grant)
    _rename(titled, owner, NEWER)
    _rename(titled, owner, OLD + " (reviewed)")
    assert _case_cells(client_as(consultant)) == [NEW]


def test_a_live_share_names_the_case_as_it_is_now(titled, owner, consultant, client_as):
    _share(titled, owner, consultant)
    _rename(titled, owner, NEW)
    assert _case_cells(client_as(consultant)) == [NEW]


def test_an_ended_share_beside_a_live_one_of_the_case_names_it_as_it_is_now(titled, owner, consultant, client_as):
    """Their access to the case has not ended: both rows name it as the live one's case page does."""
    ended = _share(titled, owner, consultant)
    services.grants_revoke(grants=[ended], by=owner, reason="manual")
    _share(titled, owner, consultant)
    _rename(titled, owner, NEW)
    assert _case_cells(client_as(consultant)) == [NEW, NEW]


def test_an_extended_share_names_the_case_as_it_is_now_and_when_it_ends_again(titled, owner, consultant, client_as):
    grant = _share(titled, owner, consultant)
    _run_out(grant)
    _rename(titled, owner, NEW)
    services.grant_extend(grant=grant, by=owner, expires_at=timezone.now() + timedelta(hours=6),
                          reason="The board meets again on Thursday.")
    assert _case_cells(client_as(consultant)) == [NEW]
    grant.refresh_from_db()
    services.grants_revoke(grants=[grant], by=owner, reason="manual")
    _rename(titled, owner, NEWER)
    assert _case_cells(client_as(consultant)) == [NEW]


def test_an_ended_share_whose_title_is_not_known_is_named_by_a_neutral_label(titled, owner, consultant, client_as):
    """Ended before titles were kept, its case changed since (migration 0014 marks it "")."""
    grant = _share(titled, owner, consultant)
    services.grants_revoke(grants=[grant], by=owner, reason="manual")
    type(grant).objects.filter(pk=grant.pk).update(case_title_at_end="")
    assert _case_cells(client_as(consultant)) == ["A case no longer shared with you"]
