"""The invitations page a page at a time: it was cut at 100 without a word."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.accounts import views
from tests.factories import InvitationFactory
from tests.pages import first_and_last_of_seven, queries_and_html

pytestmark = pytest.mark.django_db


def test_the_invitations_come_a_page_at_a_time_in_the_same_queries(org_a, admin_a, verified_client, monkeypatch):
    monkeypatch.setattr(views, "INVITATIONS_PAGE_SIZE", 3)
    client = verified_client(admin_a)
    url = reverse("accounts:invitation_list")
    InvitationFactory.create_batch(2, organization=org_a)
    few, _html = queries_and_html(client, url)
    InvitationFactory.create_batch(5, organization=org_a)
    many, _first, _last = first_and_last_of_seven(client, url, row="@elsewhere.example")
    assert many == few, (few, many)
