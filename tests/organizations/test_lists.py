"""The members page a page at a time (a hospital has thousands of members), and the dashboard's
member count counted by the database, not by reading every membership."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.organizations import views
from apps.organizations.models import Role
from tests.factories import member
from tests.pages import pages_of_seven, queries_and_html

pytestmark = pytest.mark.django_db


def test_the_members_page_shows_a_page_of_members_and_how_many_there_are(org_a, admin_a, client_as, monkeypatch):
    monkeypatch.setattr(views, "MEMBERS_PAGE_SIZE", 3)
    for i in range(6):
        member(org_a, Role.CLINICIAN, email=f"m{i}@alpha.example")  # with admin@alpha.example: 7
    client = client_as(admin_a)
    url = reverse("organizations:members")
    pages = pages_of_seven(client, url, shown_in=lambda html: {
        e for e in [f"m{i}@alpha.example" for i in range(6)] + ["admin@alpha.example"]
        if f'<td data-label="E-mail">{e}</td>' in html})
    assert len(set().union(*(shown for _html, shown in pages))) == 7


def test_the_members_page_costs_the_same_for_3_members_as_for_30(org_a, admin_a, client_as):
    client = client_as(admin_a)
    url = reverse("organizations:members")
    member(org_a, Role.CLINICIAN)
    member(org_a, Role.RADIOLOGIST)
    few, few_html = queries_and_html(client, url)
    for _ in range(27):
        member(org_a, Role.CLINICIAN)
    many, many_html = queries_and_html(client, url)
    assert few_html.count("/org/members/") < many_html.count("/org/members/")
    assert many == few, (few, many)


def test_the_dashboard_counts_the_members_in_the_database(org_a, admin_a, client_as):
    for _ in range(5):
        member(org_a, Role.CLINICIAN)
    client = client_as(admin_a)
    client.get("/")
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/")
    assert response.status_code == 200 and response.context["member_count"] == 6
    # the count, not every member read with their account (the members page's query)
    member_rows = [q["sql"] for q in ctx.captured_queries if '"organizations_membership"."is_active" DESC' in q["sql"]]
    assert not member_rows, member_rows
