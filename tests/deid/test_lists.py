"""A study's de-identified exports and an export's per-image report a page at a time, saying
which of how many they show: both were cut (at 50 exports, at 1,000 images) without a word,
and the queries stay the same for few rows as for many."""

from __future__ import annotations

import pytest

from apps.deid import views
from apps.organizations.models import Role
from tests.factories import DeidExportFactory, DeidExportFileFactory, StudyFactory, member
from tests.pages import first_and_last_of_seven, page_range, queries_and_html

pytestmark = pytest.mark.django_db


def test_a_study_s_exports_come_a_page_at_a_time(org_a, client_as, monkeypatch):
    monkeypatch.setattr(views, "EXPORTS_PAGE_SIZE", 3)
    clinician = member(org_a, Role.CLINICIAN)
    study = StudyFactory(organization=org_a)
    DeidExportFactory.create_batch(7, organization=org_a, study=study, created_by=clinician)
    url = f"/studies/{study.public_id}/deid/"
    client = client_as(clinician)
    first_and_last_of_seven(client, url, row='data-testid="deid-export"', anchor="#exports-heading")


def test_an_export_s_report_comes_a_page_at_a_time_in_the_same_queries(org_a, client_as, monkeypatch):
    monkeypatch.setattr(views, "FILES_PAGE_SIZE", 3)
    clinician = member(org_a, Role.CLINICIAN)
    client = client_as(clinician)
    counts = {}
    for n in (2, 7):
        export = DeidExportFactory(organization=org_a, study=StudyFactory(organization=org_a), created_by=clinician)
        DeidExportFileFactory.create_batch(n, organization=org_a, export=export)
        counts[n], html = queries_and_html(client, export.get_absolute_url())
        assert html.count('data-testid="deid-file"') == min(n, 3)
    assert page_range(html) == "Showing 1–3 of 7" and 'href="?page=2#report-heading" rel="next"' in html
    _n, last = queries_and_html(client, export.get_absolute_url() + "?page=3")
    assert last.count('data-testid="deid-file"') == 1 and page_range(last) == "Showing 7–7 of 7"
    assert counts[2] == counts[7], counts
