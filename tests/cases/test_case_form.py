"""The case form's responsible clinician, searched on the server as a tumor board's host: a
hospital's hundreds of clinicians and radiologists were one drop-down of every one of them. The
form draws "No one named yet", the one named, then a bounded number of matches by name or
e-mail; it still accepts any clinician or radiologist of the organization, or no one, and no one
else (apps.core.forms.SearchedModelChoiceField, made with blank=True)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.cases.models import Case
from apps.core import forms as core_forms
from apps.organizations.models import Role
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

NEW_CASE = {"mrn": "QF-0001", "patient_name": "Test^Patient", "title": "Quillfeather review"}


def _radios(html: str) -> dict[str, bool]:
    """The responsible clinician's radio buttons, in page order: value ("" for no one) -> chosen."""
    return {re.search(r'value="(\d*)"', tag).group(1): " checked" in tag
            for tag in re.findall(r'<input type="radio" name="responsible_clinician"[^>]*>', html)}


def _found(html: str) -> str:
    match = re.search(r'id="id_responsible_clinician_found"[^>]*>(.*?)</p>', html, re.S)
    return " ".join(match.group(1).split()) if match else ""


@pytest.fixture
def many_clinicians(org_a, monkeypatch):
    """Five matches a list, and twelve clinicians: a list longer than the page draws."""
    monkeypatch.setattr(core_forms, "CHOICES_SHOWN", 5)
    return [member(org_a, Role.CLINICIAN, full_name=f"Clinician {i:02d}") for i in range(12)]


def test_the_list_draws_no_one_then_a_bounded_number_of_clinicians_and_says_how_many(
        org_a, clinician_a, client_as, many_clinicians):
    member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Never responsible")
    html = client_as(clinician_a).get(reverse("cases:case_create")).content.decode()
    radios = _radios(html)
    assert next(iter(radios)) == "" and len(radios) == 1 + 5
    assert radios[""] is True and sum(radios.values()) == 1  # no one named: "No one named yet" chosen
    assert "No one named yet" in html
    total = 12 + 1  # the twelve and the user, a clinician too
    assert _found(html) == f"Showing 5 of {total}; search to find the others."
    assert '<select name="responsible_clinician"' not in html
    assert "Never responsible" not in html


def test_a_clinician_beyond_those_drawn_is_found_by_search_and_saved(org_a, clinician_a, client_as,
                                                                    many_clinicians):
    wanted = member(org_a, Role.RADIOLOGIST, full_name="Zerelda Quillfeather", email="z.quillfeather@northwind.test")
    client = client_as(clinician_a)
    url = reverse("cases:case_create")
    assert str(wanted.pk) not in _radios(client.get(url).content.decode())
    # the Search button draws the form again with the matches; nothing saved
    response = client.post(url, {**NEW_CASE, "responsible_clinician_q": "quillfeather",
                                 "search_choices": "responsible_clinician"})
    html = response.content.decode()
    assert response.status_code == 200
    assert _radios(html) == {"": True, str(wanted.pk): False}
    assert _found(html) == "1 choice matches the search."
    assert 'value="QF-0001"' in html  # what was typed is kept
    assert not Case.objects.exists()
    # as the script asks while the text is typed
    body = client.get(reverse("cases:case_choices"), {"list": "responsible_clinician", "q": "QUILLFEATHER"}).json()
    assert body["choices"] == [{"value": str(wanted.pk),
                                "label": "Zerelda Quillfeather (z.quillfeather@northwind.test)"}]
    saved = client.post(url, {**NEW_CASE, "responsible_clinician": wanted.pk})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert Case.objects.get().responsible_clinician == wanted


def test_any_clinician_or_no_one_may_be_named_and_no_one_else(org_a, org_b, clinician_a, client_as,
                                                             many_clinicians):
    undrawn = member(org_a, Role.RADIOLOGIST, full_name="Xavier Quarterfold")  # never drawn: not searched for
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Casey Outside")
    coordinator = member(org_a, Role.COORDINATOR, full_name="Cora Ordinate")
    theirs = member(org_b, Role.CLINICIAN, full_name="Their clinician")
    client = client_as(clinician_a)
    url = reverse("cases:case_create")
    for refused in (consultant, coordinator, theirs, "99999999999999999999", "nobody"):
        response = client.post(url, {**NEW_CASE, "responsible_clinician": getattr(refused, "pk", refused)})
        assert response.status_code == 400, refused
        assert "Select a valid choice" in response.content.decode()
        assert "Their clinician" not in response.content.decode()
    assert not Case.objects.exists()
    choices = reverse("cases:case_choices")
    assert client.get(choices, {"list": "responsible_clinician", "q": "their"}).json()["choices"] == []
    assert client.post(url, {**NEW_CASE, "responsible_clinician": undrawn.pk}).status_code == 302
    assert Case.objects.get().responsible_clinician == undrawn
    assert client.post(url, {**NEW_CASE, "mrn": "QF-0002", "responsible_clinician": ""}).status_code == 302
    assert Case.objects.get(patient__mrn="QF-0002").responsible_clinician is None


def test_editing_a_case_shows_its_clinician_chosen_first_and_may_name_no_one(org_a, clinician_a, client_as,
                                                                            many_clinicians):
    named = member(org_a, Role.RADIOLOGIST, full_name="Zebulon Readwright")
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=named,
                       title="Wexcombe follow-up")
    edit = reverse("cases:case_edit", kwargs={"case_id": case.public_id})
    client = client_as(clinician_a)
    radios = _radios(client.get(edit).content.decode())
    assert list(radios)[:2] == ["", str(named.pk)] and radios[str(named.pk)] is True and sum(radios.values()) == 1
    searched = client.post(edit, {"title": case.title, "responsible_clinician": named.pk,
                                  "responsible_clinician_q": "nothing like it",
                                  "search_choices": "responsible_clinician"}).content.decode()
    assert _radios(searched) == {"": False, str(named.pk): True}  # kept, whatever the search
    assert client.post(edit, {"title": case.title, "responsible_clinician": ""}).status_code == 302
    case.refresh_from_db()
    assert case.responsible_clinician is None


def test_the_choices_answer_only_whoever_may_make_cases(org_a, client_as, clinician_a):
    choices = reverse("cases:case_choices")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    assert client_as(consultant).get(choices, {"list": "responsible_clinician", "q": "a"}).status_code in (403, 404)
    assert client_as(clinician_a).get(choices, {"list": "title", "q": "a"}).status_code == 404
    assert client_as(clinician_a).get(choices, {"list": "responsible_clinician"}).status_code == 200
