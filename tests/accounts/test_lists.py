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


def test_each_invitation_says_who_sent_it_and_for_which_cases(org_a, admin_a, verified_client):
    """QA: the invitations page named neither who invited nor the case a patient invitation was
    sent from, nor the cases a consultant was invited to; in the same queries for any number."""
    from apps.accounts.models import InvitationKind
    from tests.factories import CaseFactory

    chest, brain = CaseFactory(organization=org_a, title="Chest CT review"), CaseFactory(organization=org_a,
                                                                                         title="Brain MR board")
    consultant = InvitationFactory(organization=org_a, created_by=admin_a)
    consultant.cases.set([chest, brain])
    InvitationFactory(organization=org_a, kind=InvitationKind.PATIENT, patient=chest.patient, case=chest,
                      created_by=admin_a)
    client = verified_client(admin_a)
    url = reverse("accounts:invitation_list")
    few, html = queries_and_html(client, url)
    assert html.count(f'data-testid="invitation-by">{admin_a.display_name}<') == 2
    assert 'data-testid="invitation-cases">Chest CT review<' in html
    assert 'data-testid="invitation-cases">Chest CT review, Brain MR board<' in html or \
        'data-testid="invitation-cases">Brain MR board, Chest CT review<' in html
    for _ in range(3):
        InvitationFactory(organization=org_a, created_by=admin_a).cases.set([brain])
    more, _html = queries_and_html(client, url)
    assert more == few, (few, more)
