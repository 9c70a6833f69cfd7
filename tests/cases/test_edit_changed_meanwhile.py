"""Two people editing one record at once (review 23): A and B open the patient-details page; B
corrects the misspelt name and saves; A, whose form still shows the old name, corrects only the
birth date and saves. A's save wrote the old name back over B's correction, on all the patient's
cases, without a word, and the trail said A had changed the name. Each edit form now carries the
version of what it showed (``services.edit_version``, hidden); a save made on details someone
else changed since is refused, nothing is written, and the form shows what is recorded now with
why (409). The case edit form does the same (same mechanism, ``forms.EditVersionMixin``).

Every post here is what a browser sends: the form as the page drew it (its hidden version
included), with the fields the person changed."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.cases.models import Case, Patient
from apps.organizations.models import Role
from tests.factories import CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db

CHANGED = "These details were changed by someone else meanwhile: here is what is recorded now; " \
          "make your correction again."


def _fields(page: str) -> dict[str, str]:
    """The values of the page's inputs and text areas, as a browser would post them (of radio
    buttons and checkboxes, those ticked)."""
    values = {}
    for tag in re.findall(r"<input\b[^>]*>", page):
        attrs = dict(re.findall(r'\b([\w-]+)="([^"]*)"', tag))
        if "name" in attrs and (attrs.get("type") not in ("radio", "checkbox") or " checked" in tag):
            values[attrs["name"]] = html.unescape(attrs.get("value", ""))
    for m in re.finditer(r'<textarea\b[^>]*\bname="(?P<name>[^"]+)"[^>]*>(?P<value>.*?)</textarea>', page, re.S):
        values[m["name"]] = html.unescape(m["value"]).lstrip("\n")
    values.pop("csrfmiddlewaretoken", None)
    return values


def _patient_edit(case):
    return reverse("cases:patient_edit", kwargs={"case_id": case.public_id})


def _case_edit(case):
    return reverse("cases:case_edit", kwargs={"case_id": case.public_id})


@pytest.fixture
def patient(org_a):
    return PatientFactory(organization=org_a, mrn="LU-1", name="Jon Smiht", birth_date=datetime.date(1950, 1, 1))


@pytest.fixture
def case(org_a, patient):
    return CaseFactory(organization=org_a, patient=patient, title="Left lung nodule")


def test_a_correction_made_on_details_changed_meanwhile_is_refused_and_shows_what_is_recorded(
        org_a, patient, case, client_as):
    a_user, b_user = member(org_a, Role.CLINICIAN), member(org_a, Role.COORDINATOR)
    a, b = client_as(a_user), client_as(b_user)
    a_form, b_form = _fields(a.get(_patient_edit(case)).content.decode()), \
        _fields(b.get(_patient_edit(case)).content.decode())
    assert a_form["name"] == "Jon Smiht" and a_form["version"] == b_form["version"]

    assert b.post(_patient_edit(case), {**b_form, "name": "Jon Smith"}).status_code == 302
    refused = a.post(_patient_edit(case), {**a_form, "birth_date": "1951-01-01"})

    assert refused.status_code == 409
    text = refused.content.decode()
    assert html.escape(CHANGED) in text
    shown = _fields(text)  # what is recorded now, to correct again on
    assert (shown["name"], shown["birth_date"]) == ("Jon Smith", "1950-01-01")
    patient.refresh_from_db()
    assert (patient.name, patient.birth_date) == ("Jon Smith", datetime.date(1950, 1, 1))  # nothing overwritten
    updated = list(AuditEvent.objects.filter(action="patient.updated").order_by("id"))
    assert [(e.actor_id, e.details) for e in updated] == [(b_user.pk, {"fields": ["name"]})]

    # made again on the form shown now, A's correction is saved, and only the birth date is A's
    assert a.post(_patient_edit(case), {**shown, "birth_date": "1951-01-01"}).status_code == 302
    patient.refresh_from_db()
    assert (patient.name, patient.birth_date) == ("Jon Smith", datetime.date(1951, 1, 1))
    last = AuditEvent.objects.filter(action="patient.updated").order_by("-id").first()
    assert (last.actor_id, last.details) == (a_user.pk, {"fields": ["birth_date"]})


def test_a_correction_of_details_nobody_changed_meanwhile_is_saved(org_a, patient, case, client_as):
    a = client_as(member(org_a, Role.CLINICIAN))
    form = _fields(a.get(_patient_edit(case)).content.decode())
    assert a.post(_patient_edit(case), {**form, "name": "Jon Smith"}).status_code == 302
    assert Patient.objects.get(pk=patient.pk).name == "Jon Smith"


def test_a_case_edit_made_on_a_case_changed_meanwhile_is_refused_and_shows_what_is_recorded(
        org_a, case, client_as):
    a, b = client_as(member(org_a, Role.CLINICIAN)), client_as(member(org_a, Role.COORDINATOR))
    a_form, b_form = _fields(a.get(_case_edit(case)).content.decode()), \
        _fields(b.get(_case_edit(case)).content.decode())
    assert a_form["title"] == "Left lung nodule" and a_form["version"]

    assert b.post(_case_edit(case), {**b_form, "title": "Right lung nodule"}).status_code == 302
    refused = a.post(_case_edit(case), {**a_form, "referred_by": "Dr. Example"})

    assert refused.status_code == 409
    text = refused.content.decode()
    assert html.escape(CHANGED) in text and _fields(text)["title"] == "Right lung nodule"
    case = Case.objects.get(pk=case.pk)
    assert (case.title, case.referred_by) == ("Right lung nodule", "")
    assert [e.details for e in AuditEvent.objects.filter(action="case.edited")] == [{"fields": ["title"]}]
