"""Lists of the case pages as an organization's data grows: a page at a time, saying how many
are shown of how many, with the way to the rest (apps.core.pagination)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.cases import views
from apps.cases.models import CaseStatus
from tests.factories import CaseFactory, StudyFactory
from tests.pages import first_and_last_of_seven, page_range, queries_and_html

pytestmark = pytest.mark.django_db


def test_the_case_list_says_which_cases_of_how_many_it_shows(org_a, clinician_a, client_as, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    CaseFactory.create_batch(10, organization=org_a)
    client = client_as(clinician_a)
    _n, first = queries_and_html(client, reverse("cases:case_list") + "?status=open")
    assert page_range(first) == "Showing 1–4 of 10"
    assert 'href="?status=open&amp;page=2" rel="next"' in first
    _n, last = queries_and_html(client, reverse("cases:case_list") + "?status=open&page=3")
    assert page_range(last) == "Showing 9–10 of 10"


def test_a_case_page_shows_a_page_of_its_studies_and_how_many_there_are(org_a, clinician_a, client_as,
                                                                          monkeypatch):
    monkeypatch.setattr(views, "STUDIES_PAGE_SIZE", 3)
    case = CaseFactory(organization=org_a)
    for i in range(7):
        StudyFactory(organization=org_a, case=case, study_description=f"Study {i}")
    url = reverse("cases:case_detail", kwargs={"case_id": case.public_id})
    client = client_as(clinician_a)
    first_and_last_of_seven(client, url, row='data-testid="study"', param="studies", anchor="#studies")
    seen = set()
    for n in (1, 2, 3):
        _q, html = queries_and_html(client, f"{url}?studies={n}")
        seen |= {f"Study {i}" for i in range(7) if f">Study {i}<" in html}
    assert seen == {f"Study {i}" for i in range(7)}  # every study on one page or another, none twice or lost


def test_the_tumor_boards_come_a_page_at_a_time_in_the_same_queries(org_a, clinician_a, client_as, monkeypatch):
    from tests.factories import BoardSessionFactory

    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    client = client_as(clinician_a)
    BoardSessionFactory.create_batch(2, organization=org_a, host=clinician_a)
    few, _html = queries_and_html(client, reverse("cases:board_list"))
    BoardSessionFactory.create_batch(5, organization=org_a, host=clinician_a)
    many, first = queries_and_html(client, reverse("cases:board_list"))
    assert first.count("/boards/") - first.count("/boards/new/") >= 3 and page_range(first) == "Showing 1–3 of 7"
    _n, last = queries_and_html(client, reverse("cases:board_list") + "?page=3")
    assert page_range(last) == "Showing 7–7 of 7" and 'href="?page=2" rel="prev"' in last
    assert many == few, (few, many)


def test_a_case_page_opens_on_its_newest_notes_with_the_older_ones_a_link_away(org_a, clinician_a, client_as,
                                                                                monkeypatch):
    from apps.cases.models import CaseNote

    monkeypatch.setattr(views, "NOTES_PAGE_SIZE", 3)
    case = CaseFactory(organization=org_a)
    CaseNote.objects.bulk_create([CaseNote(organization=org_a, case=case, author=clinician_a, body=f"Remark {i}.")
                                  for i in range(7)])
    url = reverse("cases:case_detail", kwargs={"case_id": case.public_id})
    client = client_as(clinician_a)
    _n, newest = queries_and_html(client, url)
    # 7 = 3 + 4: the newest page takes the one left over rather than open on it alone
    assert [i for i in range(7) if f"Remark {i}." in newest] == [3, 4, 5, 6]
    assert page_range(newest) == "Showing 4–7 of 7" and "Notes (7)" in newest
    assert 'href="?notes=1#notes" rel="prev"' in newest and '<ol class="timeline" start="4">' in newest
    _n, older = queries_and_html(client, url + "?notes=1")
    assert [i for i in range(7) if f"Remark {i}." in older] == [0, 1, 2] and page_range(older) == "Showing 1–3 of 7"


def test_a_case_page_shows_a_page_of_its_attachments(org_a, clinician_a, client_as, monkeypatch):
    from tests.factories import AttachmentFactory

    monkeypatch.setattr(views, "ATTACHMENTS_PAGE_SIZE", 3)
    case = CaseFactory(organization=org_a)
    url = reverse("cases:case_detail", kwargs={"case_id": case.public_id})
    client = client_as(clinician_a)
    AttachmentFactory.create_batch(2, organization=org_a, case=case)
    few, _html = queries_and_html(client, url)
    AttachmentFactory.create_batch(5, organization=org_a, case=case)
    many, _first, _last = first_and_last_of_seven(client, url, row='data-testid="attachment"', param="attachments",
                                                  anchor="#attachments")
    assert many == few, (few, many)


def test_the_list_keeps_to_open_cases_on_its_other_pages_until_any_status_is_asked_for(
        org_a, clinician_a, client_as, monkeypatch):
    """The list opens on the open cases; its page 2 (?page=2, no status in the address) showed
    every case while the form said "Any status"."""
    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    for i in range(6):
        CaseFactory(organization=org_a, title=f"Open case {i:03d}")
    closed = CaseFactory(organization=org_a, title="A closed one", status=CaseStatus.CLOSED)
    client = client_as(clinician_a)
    _n, first = queries_and_html(client, reverse("cases:case_list"))
    _n, second = queries_and_html(client, reverse("cases:case_list") + "?page=2")
    assert 'href="?page=2" rel="next"' in first
    for html in (first, second):
        assert closed.title not in html
        assert '<option value="open" selected>' in html
        # the default is no filter in use: on a phone the filters start closed
        assert 'aria-expanded="false"' in html.split("filters-toggle")[1][:120]
    assert "Open case 000" in second and page_range(second) == "Showing 5–6 of 6"
    _n, every = queries_and_html(client, reverse("cases:case_list") + "?status=")  # "Any status", Clear
    assert closed.title in every and page_range(every) == "Showing 1–4 of 7"
    _n, only_closed = queries_and_html(client, reverse("cases:case_list") + "?status=closed")
    assert closed.title in only_closed and "Open case" not in only_closed
    assert 'aria-expanded="true"' in only_closed.split("filters-toggle")[1][:120]
