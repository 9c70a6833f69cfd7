"""The invitations page a page at a time: it was cut at 100 without a word."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.accounts import views
from tests.factories import InvitationFactory
from tests.pages import page_range, queries_and_html

pytestmark = pytest.mark.django_db


def test_the_invitations_come_a_page_at_a_time_in_the_same_queries(org_a, admin_a, verified_client, monkeypatch):
    monkeypatch.setattr(views, "INVITATIONS_PAGE_SIZE", 3)
    client = verified_client(admin_a)
    url = reverse("accounts:invitation_list")
    InvitationFactory.create_batch(2, organization=org_a)
    few, _html = queries_and_html(client, url)
    InvitationFactory.create_batch(5, organization=org_a)
    many, first = queries_and_html(client, url)
    assert first.count("@elsewhere.example") == 3 and page_range(first) == "Showing 1–3 of 7"
    _n, last = queries_and_html(client, url + "?page=3")
    assert last.count("@elsewhere.example") == 1 and page_range(last) == "Showing 7–7 of 7"
    assert many == few, (few, many)
