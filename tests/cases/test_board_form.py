"""The tumor board form's lists of cases and participants, searched on the server: a hospital's
thousands of open cases and hundreds of members were thousands of checkboxes on one page. The
form draws those ticked and a bounded number of matches of a search, says how many more match,
and still accepts any open case or eligible member of the organization (apps.core.forms
SearchedModelMultipleChoiceField)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.cases.models import BoardSession, CaseStatus
from apps.core import forms as core_forms
from apps.organizations.models import Role
from tests.factories import BoardSessionFactory, CaseFactory, member
from tests.pages import queries_and_html

pytestmark = pytest.mark.django_db

BOARD = {"title": "Thoracic board", "meeting_at": "2030-01-15T16:00", "review_days": "5"}


def _boxes(html: str, name: str) -> dict[int, bool]:
    """The checkboxes of list ``name`` on the page: id -> ticked."""
    found = {}
    for tag in re.findall(rf'<input type="checkbox" name="{name}"[^>]*>', html):
        found[int(re.search(r'value="(\d+)"', tag).group(1))] = " checked" in tag
    return found


def _found(html: str, name: str) -> str:
    match = re.search(rf'id="id_{name}_found"[^>]*>(.*?)</p>', html, re.S)
    return " ".join(match.group(1).split()) if match else ""


@pytest.fixture
def few_shown(monkeypatch):
    """Five matches a list, so that a handful of cases is a list longer than the page draws."""
    monkeypatch.setattr(core_forms, "CHOICES_SHOWN", 5)


def test_the_form_draws_a_bounded_number_of_300_open_cases_and_says_how_many(org_a, clinician_a, client_as):
    CaseFactory.create_batch(300, organization=org_a)
    CaseFactory(organization=org_a, title="A closed case", status=CaseStatus.CLOSED)
    _n, html = queries_and_html(client_as(clinician_a), reverse("cases:board_create"))
    assert len(_boxes(html, "cases")) == core_forms.CHOICES_SHOWN == 50
    assert _found(html, "cases") == "Showing 50 of 300; search to find the others."
    assert "A closed case" not in html
    assert len(html) < 60_000, len(html)  # every case drawn was about 300 bytes more each


def test_the_form_costs_the_same_queries_for_3_cases_and_members_as_for_30(org_a, clinician_a, client_as,
                                                                           few_shown):
    counts = {}
    for n, more in ((3, 3), (30, 27)):
        for _ in range(more):
            CaseFactory(organization=org_a)
            member(org_a, Role.EXTERNAL_CONSULTANT)
        counts[n], html = queries_and_html(client_as(clinician_a), reverse("cases:board_create"))
    assert counts[3] == counts[30], counts
    assert len(_boxes(html, "cases")) == 5 and len(_boxes(html, "participants")) == 5
    board = BoardSessionFactory(organization=org_a, host=clinician_a)
    edit = reverse("cases:board_edit", kwargs={"boardsession_id": board.public_id})
    few, _html = queries_and_html(client_as(clinician_a), edit)
    CaseFactory.create_batch(10, organization=org_a)
    many, _html = queries_and_html(client_as(clinician_a), edit)
    assert few == many


def test_a_case_beyond_those_drawn_is_found_by_search_ticked_and_saved(org_a, clinician_a, client_as, few_shown):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Casey Outside")
    CaseFactory.create_batch(12, organization=org_a, title="Chest CT")
    wanted = CaseFactory(organization=org_a, title="Zygoma fracture review")
    client = client_as(clinician_a)
    url = reverse("cases:board_create")
    first = client.get(url).content.decode()
    assert wanted.pk not in _boxes(first, "cases") and "Zygoma" not in first
    # the list's Search button draws the form again with the matches; nothing is saved
    searched = client.post(url, {**BOARD, "host": clinician_a.pk, "cases_q": "zygoma",
                                 "search_choices": "cases"})
    assert searched.status_code == 200
    html = searched.content.decode()
    assert _boxes(html, "cases") == {wanted.pk: False}
    assert _found(html, "cases") == "1 choice matches the search."
    assert not BoardSession.objects.exists() and 'class="errors"' not in html
    saved = client.post(url, {**BOARD, "host": clinician_a.pk, "cases_q": "zygoma", "cases": [wanted.pk],
                              "participants": [consultant.pk]})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    board = BoardSession.objects.get()
    assert list(board.cases.all()) == [wanted] and list(board.participants.all()) == [consultant]


def test_what_is_ticked_and_typed_survives_a_search(org_a, clinician_a, client_as, few_shown):
    cases = [CaseFactory(organization=org_a, title=f"Chest CT {i:02d}") for i in range(12)]
    people = [member(org_a, Role.EXTERNAL_CONSULTANT, full_name=f"Consultant {i:02d}") for i in range(12)]
    ticked_case, ticked_person = cases[10], people[11]  # neither among the first drawn, nor matching
    response = client_as(clinician_a).post(reverse("cases:board_create"), {
        "title": "Typed before searching", "meeting_at": "2030-01-15T16:00", "review_days": "6",
        "host": clinician_a.pk, "cases": [ticked_case.pk], "participants": [ticked_person.pk],
        "cases_q": "Chest CT 03", "participants_q": "Consultant 0", "search_choices": "participants"})
    assert response.status_code == 200
    html = response.content.decode()
    assert _boxes(html, "cases") == {ticked_case.pk: True, cases[3].pk: False}
    assert _boxes(html, "participants") == {ticked_person.pk: True, **{p.pk: False for p in people[:5]}}
    assert _found(html, "participants") == "Showing 5 of 10 matching; narrow the search."
    assert 'value="Typed before searching"' in html and '<option value="6" selected>' in html
    assert 'value="Chest CT 03"' in html and 'value="Consultant 0"' in html
    assert not BoardSession.objects.exists()


def test_editing_a_board_shows_its_cases_and_participants_whatever_is_searched(org_a, clinician_a, client_as,
                                                                              few_shown):
    CaseFactory.create_batch(12, organization=org_a, title="Chest CT")
    on_board = CaseFactory(organization=org_a, title="Zygoma fracture review")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Zed Consultant")
    for _ in range(12):
        member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Another consultant")
    board = BoardSessionFactory(organization=org_a, host=clinician_a)
    board.cases.add(on_board)
    board.participants.add(consultant)
    edit = reverse("cases:board_edit", kwargs={"boardsession_id": board.public_id})
    client = client_as(clinician_a)
    html = client.get(edit).content.decode()
    assert _boxes(html, "cases")[on_board.pk] is True and len(_boxes(html, "cases")) == 6
    assert _boxes(html, "participants")[consultant.pk] is True
    # a search that does not find them keeps them, ticked
    searched = client.post(edit, {**BOARD, "host": clinician_a.pk, "cases": [on_board.pk],
                                  "participants": [consultant.pk], "cases_q": "nothing like it",
                                  "search_choices": "cases"}).content.decode()
    assert _boxes(searched, "cases") == {on_board.pk: True}
    assert _found(searched, "cases") == "No other choice matches “nothing like it”."
    board.refresh_from_db()
    assert board.title != BOARD["title"]  # a search saves nothing


def test_another_organizations_case_or_member_is_refused_and_never_shown(org_a, org_b, clinician_a, client_as):
    ours = CaseFactory(organization=org_a, title="Our chest CT")
    theirs = CaseFactory(organization=org_b, title="Their chest CT")
    outsider = member(org_b, Role.EXTERNAL_CONSULTANT, full_name="Their consultant")
    client = client_as(clinician_a)
    url = reverse("cases:board_create")
    refused = client.post(url, {**BOARD, "host": clinician_a.pk, "cases": [ours.pk, theirs.pk]})
    assert refused.status_code == 400 and not BoardSession.objects.exists()
    assert "Their chest CT" not in refused.content.decode()
    refused = client.post(url, {**BOARD, "host": clinician_a.pk, "participants": [outsider.pk]})
    assert refused.status_code == 400 and not BoardSession.objects.exists()
    # ticked by id or searched by title, another organization's rows are not drawn
    searched = client.post(url, {**BOARD, "host": clinician_a.pk, "cases": [theirs.pk], "participants": [outsider.pk],
                                 "cases_q": "chest", "participants_q": "their", "search_choices": "cases"})
    html = searched.content.decode()
    assert _boxes(html, "cases") == {ours.pk: False} and _boxes(html, "participants") == {}
    assert "Their chest CT" not in html and "Their consultant" not in html
    choices = client.get(reverse("cases:board_choices"), {"list": "cases", "q": "chest"}).json()
    assert [c["label"] for c in choices["choices"]] == ["Our chest CT"]


def test_members_are_found_by_name_or_e_mail(org_a, clinician_a, client_as, few_shown):
    for i in range(12):
        member(org_a, Role.EXTERNAL_CONSULTANT, full_name=f"Consultant {i:02d}")
    # a name no generated member has (a generated "Goldsmith" matched "SMITH" once)
    by_mail = member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Pat Quillfeatherby",
                     email="p.quillfeatherby@outside.test")
    patient = member(org_a, Role.PATIENT, full_name="Pat Patient", email="pat@patient.test")
    client = client_as(clinician_a)
    for q in ("outside.test", "pat quillfeatherby", "QUILLFEATHERBY"):
        html = client.post(reverse("cases:board_create"), {
            **BOARD, "participants_q": q, "search_choices": "participants"}).content.decode()
        assert _boxes(html, "participants") == {by_mail.pk: False}, q
    html = client.post(reverse("cases:board_create"), {
        **BOARD, "participants_q": "pat", "search_choices": "participants"}).content.decode()
    assert patient.pk not in _boxes(html, "participants")  # never a participant: not offered


def test_the_search_takes_any_text_without_failing(org_a, clinician_a, client_as):
    CaseFactory(organization=org_a, title="Chest CT")
    client = client_as(clinician_a)
    for q in ("x" * 10_000, "\x00", "chest\x00", "%_\\'\"<b>", "\u202e\U0001f600"):
        response = client.post(reverse("cases:board_create"), {**BOARD, "cases_q": q, "participants_q": q,
                                                               "search_choices": "cases"})
        assert response.status_code == 200, q
        assert "<b>" not in response.content.decode()
        answer = client.get(reverse("cases:board_choices"),
                            {"list": "cases", "q": q, "ticked": [q, "99999999999999999999"]})
        assert answer.status_code == 200, q
    html = client.post(reverse("cases:board_create"), {**BOARD, "cases_q": "chest\x00",
                                                       "search_choices": "cases"}).content.decode()
    assert 'value="chest"' in html and "Chest CT" in html
    assert client.get(reverse("cases:board_choices"), {"list": "title"}).status_code == 404
    assert client.get(reverse("cases:board_choices")).status_code == 404


def test_the_choices_endpoint_answers_whoever_may_schedule_boards_only(org_a, org_b, clinician_a, client_as,
                                                                       few_shown):
    cases = [CaseFactory(organization=org_a, title=f"Chest CT {i:02d}") for i in range(8)]
    url = reverse("cases:board_choices")
    answer = client_as(clinician_a).get(url, {"list": "cases", "q": "chest", "ticked": [cases[0].pk]})
    assert answer.status_code == 200
    body = answer.json()
    assert [c["label"] for c in body["choices"]] == [f"Chest CT {i:02d}" for i in range(1, 6)]
    assert body["choices"][0]["value"] == str(cases[1].pk)
    assert (body["shown"], body["total"]) == (5, 7)
    assert body["status"] == "Showing 5 of 7 matching; narrow the search."
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    assert client_as(consultant).get(url, {"list": "cases", "q": "chest"}).status_code == 403
    assert client_as(member(org_b, Role.CLINICIAN)).get(url, {"list": "cases", "q": "chest"}).json()["choices"] == []
    assert Client().get(url, {"list": "cases"}).status_code == 302  # signed out: to the sign-in page


# --- the host: one choice among the organization's members, searched as the other lists --------

def _radios(html: str, name: str) -> dict[int, bool]:
    """The radio buttons of list ``name`` on the page: id -> chosen."""
    found = {}
    for tag in re.findall(rf'<input type="radio" name="{name}"[^>]*>', html):
        found[int(re.search(r'value="(\d+)"', tag).group(1))] = " checked" in tag
    return found


def test_the_host_list_draws_the_host_chosen_and_a_bounded_number_of_members(org_a, clinician_a, client_as,
                                                                             few_shown):
    """A hospital's thousands of members who may host were one drop-down of every one of them."""
    for i in range(12):
        member(org_a, Role.CLINICIAN, full_name=f"Clinician {i:02d}")
    member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Never a host")
    html = client_as(clinician_a).get(reverse("cases:board_create")).content.decode()
    hosts = _radios(html, "host")
    assert len(hosts) == 6 and hosts[clinician_a.pk] is True and sum(hosts.values()) == 1  # the user by default
    assert next(iter(hosts)) == clinician_a.pk  # the host chosen comes first
    assert _found(html, "host") == "Showing 5 of 12; search to find the others."
    assert '<select name="host"' not in html  # no drop-down of every member
    assert "Never a host" not in html


def test_a_host_beyond_those_drawn_is_found_by_search_and_saved(org_a, clinician_a, client_as, few_shown):
    for i in range(12):
        member(org_a, Role.RADIOLOGIST, full_name=f"Radiologist {i:02d}")
    # a name no generated member has, and after theirs (the list is by name)
    wanted = member(org_a, Role.COORDINATOR, full_name="Zoltana Vandersnoot", email="o.vandersnoot@northwind.test")
    client = client_as(clinician_a)
    url = reverse("cases:board_create")
    assert wanted.pk not in _radios(client.get(url).content.decode(), "host")
    # the Search button draws the form again with the matches, the host chosen kept; nothing saved
    html = client.post(url, {**BOARD, "host": clinician_a.pk, "host_q": "vandersnoot",
                             "search_choices": "host"}).content.decode()
    assert _radios(html, "host") == {clinician_a.pk: True, wanted.pk: False}
    assert _found(html, "host") == "1 choice matches the search."
    assert not BoardSession.objects.exists()
    # as the script asks while the text is typed
    body = client.get(reverse("cases:board_choices"), {"list": "host", "q": "VANDERSNOOT",
                                                       "ticked": [clinician_a.pk]}).json()
    assert body["choices"] == [{"value": str(wanted.pk),
                                "label": "Zoltana Vandersnoot (o.vandersnoot@northwind.test)"}]
    saved = client.post(url, {**BOARD, "host": wanted.pk, "host_q": "vandersnoot"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert BoardSession.objects.get().host == wanted


def test_any_eligible_member_may_host_and_no_one_else(org_a, org_b, clinician_a, client_as, few_shown):
    for i in range(12):
        member(org_a, Role.CLINICIAN, full_name=f"Clinician {i:02d}")
    undrawn = member(org_a, Role.ORG_ADMIN, full_name="Ximena Quarterfold")  # never drawn: not searched for
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Casey Outside")
    patient = member(org_a, Role.PATIENT, full_name="Pat Patient")
    theirs = member(org_b, Role.CLINICIAN, full_name="Their clinician")
    client = client_as(clinician_a)
    url = reverse("cases:board_create")
    assert undrawn.pk not in _radios(client.get(url).content.decode(), "host")
    for refused in (consultant, patient, theirs, "99999999999999999999", "nobody"):
        response = client.post(url, {**BOARD, "host": getattr(refused, "pk", refused)})
        assert response.status_code == 400, refused
        assert "Select a valid choice" in response.content.decode()
        assert "Their clinician" not in response.content.decode()
    assert not BoardSession.objects.exists()
    assert client.get(reverse("cases:board_choices"), {"list": "host", "q": "their"}).json()["choices"] == []
    assert client.post(url, {**BOARD, "host": undrawn.pk}).status_code == 302
    assert BoardSession.objects.get().host == undrawn


def test_editing_a_board_keeps_its_host_chosen_whatever_is_searched(org_a, clinician_a, client_as, few_shown):
    for i in range(12):
        member(org_a, Role.CLINICIAN, full_name=f"Clinician {i:02d}")
    host = member(org_a, Role.RADIOLOGIST, full_name="Zebulon Hostwright")
    board = BoardSessionFactory(organization=org_a, host=host)
    edit = reverse("cases:board_edit", kwargs={"boardsession_id": board.public_id})
    client = client_as(clinician_a)
    hosts = _radios(client.get(edit).content.decode(), "host")
    assert hosts[host.pk] is True and sum(hosts.values()) == 1
    searched = client.post(edit, {**BOARD, "host": host.pk, "host_q": "nothing like it",
                                  "search_choices": "host"}).content.decode()
    assert _radios(searched, "host") == {host.pk: True}
