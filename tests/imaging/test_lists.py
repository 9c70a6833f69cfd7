"""The study page as a study grows: its series come a page at a time, with how many are shown
of how many and the way to the rest, in the same number of queries for 3 series as for 30."""

from __future__ import annotations

import pytest

from apps.imaging import views
from apps.organizations.models import Role
from tests.factories import InstanceFactory, SeriesFactory, StudyFactory, member
from tests.pages import page_range, queries_and_html

pytestmark = pytest.mark.django_db


def _study_with(org, n_series: int):
    study = StudyFactory(organization=org)
    for i in range(n_series):
        InstanceFactory(organization=org, series=SeriesFactory(organization=org, study=study, series_number=i + 1))
    return study


def test_the_study_page_shows_a_page_of_series_and_says_how_many_there_are(org_a, client_as, monkeypatch):
    monkeypatch.setattr(views, "SERIES_PAGE_SIZE", 3)
    study = _study_with(org_a, 7)
    client = client_as(member(org_a, Role.RADIOLOGIST))
    url = study.get_absolute_url()
    _n, first = queries_and_html(client, url)
    assert first.count('data-testid="series"') == 3
    assert page_range(first) == "Showing 1–3 of 7"
    assert 'href="?page=2#series-heading" rel="next"' in first
    _n, last = queries_and_html(client, url + "?page=3")
    assert last.count('data-testid="series"') == 1 and page_range(last) == "Showing 7–7 of 7"
    assert 'href="?page=2#series-heading" rel="prev"' in last and 'rel="next"' not in last


def test_a_study_with_few_series_has_no_pagination(org_a, client_as):
    study = _study_with(org_a, 3)
    _n, html = queries_and_html(client_as(member(org_a, Role.RADIOLOGIST)), study.get_absolute_url())
    assert html.count('data-testid="series"') == 3 and page_range(html) == "" and 'rel="next"' not in html


def test_the_study_page_costs_the_same_for_3_series_as_for_30(org_a, client_as, monkeypatch):
    monkeypatch.setattr(views, "SERIES_PAGE_SIZE", 50)
    client = client_as(member(org_a, Role.RADIOLOGIST))
    few, few_html = queries_and_html(client, _study_with(org_a, 3).get_absolute_url())
    many, many_html = queries_and_html(client, _study_with(org_a, 30).get_absolute_url())
    assert few_html.count('data-testid="series"') == 3 and many_html.count('data-testid="series"') == 30
    assert many == few, (few, many)
