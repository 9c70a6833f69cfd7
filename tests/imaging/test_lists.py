"""The study page as a study grows: its series come a page at a time, with how many are shown
of how many and the way to the rest, in the same number of queries for 3 series as for 30."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.imaging import selectors, views
from apps.organizations.models import Role
from tests.factories import CaseFactory, InstanceFactory, SeriesFactory, StudyFactory, member
from tests.pages import first_and_last_of_seven, page_range, queries_and_html

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
    _n, _first, last = first_and_last_of_seven(client, url, row='data-testid="series"', anchor="#series-heading")
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


def test_the_upload_page_says_when_it_lists_only_the_newest_cases_and_takes_any_from_its_page(
        org_a, clinician_a, client_as, monkeypatch):
    from apps.imaging import selectors

    monkeypatch.setattr(selectors, "UPLOAD_CASE_CHOICES", 3)
    oldest = CaseFactory(organization=org_a, title="The oldest open case")
    CaseFactory.create_batch(4, organization=org_a)
    client = client_as(clinician_a)
    _n, html = queries_and_html(client, reverse("imaging:upload"))
    assert _case_options(html) == 1 + 3 and "The oldest open case" not in html
    assert "The 3 newest open cases of 5 are listed." in " ".join(html.split())
    # the case's page leads to the upload page with that case chosen, whatever its age
    _n, case_page = queries_and_html(client, reverse("cases:case_detail", kwargs={"case_id": oldest.public_id}))
    link = f'{reverse("imaging:upload")}?case={oldest.public_id}'
    assert f'href="{link}" data-testid="upload-to-case"' in case_page
    _n, chosen = queries_and_html(client, link)
    assert f'<option value="{oldest.public_id}" selected>The oldest open case</option>' in chosen
    _n, bad = queries_and_html(client, reverse("imaging:upload") + "?case=not-a-uuid")
    assert "selected" not in bad.split('<select id="upload-case"', 1)[1].split("</select>", 1)[0]


def test_the_upload_page_lists_every_case_when_there_are_few(org_a, clinician_a, client_as):
    CaseFactory.create_batch(3, organization=org_a)
    _n, html = queries_and_html(client_as(clinician_a), reverse("imaging:upload"))
    assert _case_options(html) == 1 + 3 and 'data-testid="case-choices"' not in html


@pytest.mark.parametrize(("role", "status"), [(Role.ORG_ADMIN, "open"), (Role.CLINICIAN, "closed")])
def test_no_upload_button_where_the_policy_takes_no_upload(org_a, client_as, role, status):
    case = CaseFactory(organization=org_a, status=status)
    _n, html = queries_and_html(client_as(member(org_a, role)),
                                reverse("cases:case_detail", kwargs={"case_id": case.public_id}))
    assert 'data-testid="upload-to-case"' not in html


def _case_options(html: str) -> int:
    select = html.split('<select id="upload-case"', 1)[1].split("</select>", 1)[0]
    return select.count("<option value=")


def test_the_recent_uploads_come_a_page_at_a_time_in_the_same_queries(org_a, clinician_a, client_as, monkeypatch):
    from tests.factories import IngestJobFactory

    monkeypatch.setattr(views, "RECENT_UPLOADS_PAGE_SIZE", 3)
    client = client_as(clinician_a)
    url = reverse("imaging:upload")

    def jobs(numbers):
        for i in numbers:
            job = IngestJobFactory(organization=org_a, created_by=clinician_a, source_path=f"/import/batch-{i}")
            job.studies.add(StudyFactory(organization=org_a), StudyFactory(organization=org_a))

    jobs(range(2))
    few, _html = queries_and_html(client, url)
    jobs(range(2, 7))
    many, _first, _last = first_and_last_of_seven(client, url, row='job-source">batch-', param="uploads",
                                                  anchor="#recent-heading")
    assert many == few, (few, many)


def test_the_upload_report_shows_the_first_lines_of_each_ingest_in_the_same_queries(org_a, clinician_a, client_as,
                                                                                     monkeypatch):
    from apps.imaging import selectors
    from apps.imaging.models import IngestFileResult
    from tests.factories import IngestJobFactory

    monkeypatch.setattr(selectors, "REPORT_LINES", 3)
    client = client_as(clinician_a)
    counts = {}
    for n in (2, 7):
        study, other = StudyFactory(organization=org_a), StudyFactory(organization=org_a)
        for _ in range(2):
            job = IngestJobFactory(organization=org_a, created_by=clinician_a)
            job.studies.add(study)
            IngestFileResult.objects.bulk_create(
                [IngestFileResult(job=job, path=f"scan/{i}.dcm", outcome="ingested", study=study) for i in range(n)]
                + [IngestFileResult(job=job, path=f"other/{i}.dcm", outcome="ingested", study=other)
                   for i in range(4)])  # another study's lines: not this page's
        counts[n], html = queries_and_html(client, study.get_absolute_url())
        assert html.count('data-testid="report-line"') == 2 * min(n, 3) and "other/" not in html
    assert html.count('data-testid="report-range">Showing 1–3 of 7</p>') == 2
    assert counts[2] == counts[7], counts


def test_the_upload_report_puts_problems_first_and_leads_to_the_whole_of_it(org_a, org_b, clinician_a, client_as,
                                                                            monkeypatch):
    """A zip of thousands of files: its skipped and changed files came after the first lines
    shown (every line in the order read), and the rest of the report could not be reached."""
    from apps.imaging import selectors
    from apps.imaging.models import IngestFileResult
    from tests.factories import IngestJobFactory

    monkeypatch.setattr(selectors, "REPORT_LINES", 3)
    client = client_as(clinician_a)
    study = StudyFactory(organization=org_a)
    job = IngestJobFactory(organization=org_a, created_by=clinician_a)
    job.studies.add(study)
    IngestFileResult.objects.bulk_create(
        [IngestFileResult(job=job, path=f"scan/{i}.dcm", outcome="ingested", study=study) for i in range(5)]
        + [IngestFileResult(job=job, path="scan/changed.dcm", outcome="new_version", study=study),
           IngestFileResult(job=job, path="notes.txt", outcome="skipped", reason="Not a DICOM file.")])

    def lines(html):
        return re.findall(r'data-testid="report-line"[^>]*><td class="mono">([^<]+)</td>', html)

    _n, html = queries_and_html(client, study.get_absolute_url())
    assert lines(html) == ["notes.txt", "scan/changed.dcm", "scan/0.dcm"]
    assert f'href="?report={job.public_id}#report-heading"' in html
    _n, whole = queries_and_html(client, f"{study.get_absolute_url()}?report={job.public_id}")
    assert lines(whole) == ["notes.txt", "scan/changed.dcm", "scan/0.dcm"]
    assert page_range(whole) == "Showing 1–3 of 7"
    assert f'href="?report={job.public_id}&amp;lines=2#report-heading" rel="next"' in whole
    _n, last = queries_and_html(client, f"{study.get_absolute_url()}?report={job.public_id}&lines=3")
    assert lines(last) == ["scan/4.dcm"] and page_range(last) == "Showing 7–7 of 7"
    # an id that is no ingest of this study (another organization's, a bad one): the latest ingests
    foreign = IngestJobFactory(organization=org_b)
    for report in (str(foreign.public_id), "not-an-id"):
        _n, html = queries_and_html(client, f"{study.get_absolute_url()}?report={report}")
        assert lines(html) == ["notes.txt", "scan/changed.dcm", "scan/0.dcm"] and "rel=\"next\"" not in html


def test_older_ingests_of_a_study_are_a_page_away(org_a, clinician_a, client_as, monkeypatch):
    """The study page showed its latest REPORT_JOBS ingests and no way to the older ones."""
    from apps.imaging import selectors
    from apps.imaging.models import IngestFileResult
    from tests.factories import IngestJobFactory

    monkeypatch.setattr(selectors, "REPORT_JOBS", 2)
    client = client_as(clinician_a)
    study = StudyFactory(organization=org_a)
    for n in range(3):
        job = IngestJobFactory(organization=org_a, created_by=clinician_a)
        job.studies.add(study)
        IngestFileResult.objects.create(job=job, path=f"batch-{n}/IM1.dcm", outcome="ingested", study=study)
    _n, first = queries_and_html(client, study.get_absolute_url())
    assert "batch-2/" in first and "batch-1/" in first and "batch-0/" not in first
    assert page_range(first) == "Showing 1–2 of 3"
    assert 'href="?ingests=2#report-heading" rel="next"' in first
    _n, older = queries_and_html(client, study.get_absolute_url() + "?ingests=2")
    assert "batch-0/" in older and "batch-2/" not in older


def test_a_chosen_case_spelt_otherwise_is_listed_once_and_chosen(org_a, clinician_a):
    """?case= with the case's id in capitals or without hyphens names the same case: it is not
    added a second time (neither entry chosen); garbage chooses nothing."""
    old, *_newer = [CaseFactory(organization=org_a) for _ in range(3)]
    for spelling in (str(old.public_id).upper(), old.public_id.hex, str(old.public_id)):
        cases, total = selectors.upload_case_choices(user=clinician_a, organization=org_a, chosen=spelling)
        assert [c.pk for c in cases].count(old.pk) == 1 and total == 3
    cases, _total = selectors.upload_case_choices(user=clinician_a, organization=org_a, chosen="not-a-case")
    assert len(cases) == 3
