"""An export of the audit trail is a POST (CSRF-checked) behind a recent second factor, and its
own audit event says what was exported: the search (public ids, never an MRN, a name or an
e-mail address), its dates, and how many events the file holds."""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.organizations.models import Role
from tests.accounts.conftest import stale_second_factor_client
from tests.factories import CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db

EXPORTS = ["audit:export_csv", "audit:export_fhir"]


def _exported() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=actions.AUDIT_EXPORTED).order_by("seq"))


def _csv_ids(response) -> list[int]:
    return [int(r["id"]) for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))]


@pytest.mark.parametrize("name", EXPORTS)
def test_a_get_exports_nothing(admin_a, client_as, name):
    response = client_as(admin_a).get(reverse(name))
    assert response.status_code == 405 and not response.streaming
    assert not _exported()


@pytest.mark.parametrize("name", EXPORTS)
def test_a_post_without_the_csrf_token_exports_nothing(admin_a, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_a)
    response = client.post(reverse(name))
    assert response.status_code == 403 and not response.streaming
    assert not _exported()


def test_the_page_exports_the_search_shown_with_buttons_in_a_csrf_form(admin_a, client_as):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_a)
    page = client.get(reverse("audit:event_list"), {"outcome": "denied", "date_from": "2026-03-01", "page": "2"})
    html = page.content.decode()
    form = re.search(r'<form method="post" action="([^"]+)" class="audit-exports">(.*?)</form>', html, re.S)
    assert form and form[1] == reverse("audit:export_csv")
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form[2]))
    token = fields.pop("csrfmiddlewaretoken")
    assert fields == {"outcome": "denied", "date_from": "2026-03-01"}   # the search, not its page
    assert f'formaction="{reverse("audit:export_fhir")}"' in form[2]
    assert ">Export CSV</button>" in form[2] and ">Export FHIR AuditEvent (JSON)</button>" in form[2]
    # the form as the browser sends it: the export of that search
    response = client.post(reverse("audit:export_fhir"), {**fields, "csrfmiddlewaretoken": token})
    assert response.status_code == 200 and response.streaming
    b"".join(response.streaming_content)
    assert _exported()[-1].details["search"] == {"outcome": "denied", "date_from": "2026-03-01"}


def test_the_export_event_names_the_search_by_ids_and_how_many_rows(org_a, admin_a, client_as):
    patient = PatientFactory(organization=org_a, mrn="MRN-7777", name="Fictional Person")
    case = CaseFactory(organization=org_a, patient=patient, title="Chest pain work-up")
    other = CaseFactory(organization=org_a)
    rad = member(org_a, Role.CLINICIAN, email="rad@alpha.example")
    for _ in range(3):
        record(action=actions.CASE_VIEWED, actor=rad, organization=org_a, target=case)
    record(action=actions.CASE_VIEWED, actor=rad, organization=org_a, target=other)
    client = client_as(admin_a)
    response = client.post(reverse("audit:export_csv"), {"patient": "MRN-7777", "user": "rad@alpha",
                                                         "date_from": "2026-01-01", "date_to": "2099-12-31"})
    ids = _csv_ids(response)
    assert len(ids) == 3
    exported = _exported()[-1]
    assert exported.details == {
        "format": "csv", "rows": 3, "up_to_seq": exported.seq - 1,
        "search": {"patient": {"ids": [str(patient.public_id)], "matched": 1},
                   "user": {"ids": [str(rad.public_id)], "matched": 1},
                   "date_from": "2026-01-01", "date_to": "2099-12-31"},
    }
    text = json.dumps(exported.details)
    assert "MRN-7777" not in text and "Fictional" not in text and "rad@alpha" not in text
    # a case searched by its title: the cases it matched, by id; the whole trail: no criterion
    response = client.post(reverse("audit:export_fhir"), {"case": "chest pain", "action": actions.CASE_VIEWED,
                                                          "outcome": "allowed"})
    bundle = json.loads(b"".join(response.streaming_content))
    exported = _exported()[-1]
    assert exported.details["format"] == "fhir" and exported.details["rows"] == len(bundle["entry"]) == 3
    assert exported.details["search"] == {"case": {"ids": [str(case.public_id)], "matched": 1},
                                          "action": actions.CASE_VIEWED, "outcome": "allowed"}
    assert "Chest" not in json.dumps(exported.details)
    response = client.post(reverse("audit:export_csv"))
    exported = _exported()[-1]
    assert exported.details["search"] == {} and exported.details["rows"] == len(_csv_ids(response))


def test_an_export_asks_for_a_recent_second_factor_and_keeps_the_search(settings, org_a, admin_a):
    settings.LIGHTBOX_MFA_ENFORCED = True
    org_a.mfa_required_roles = []
    org_a.save()
    client, _device = stale_second_factor_client(admin_a)
    response = client.post(reverse("audit:export_csv"), {"outcome": "denied", "action": actions.CASE_VIEWED})
    assert response.status_code == 302 and not response.streaming
    location = urlsplit(response["Location"])
    assert location.path == reverse("accounts:step_up")
    back = urlsplit(parse_qs(location.query)["next"][0])
    assert back.path == reverse("audit:event_list")      # the page, to press Export again
    assert parse_qs(back.query) == {"outcome": ["denied"], "action": [actions.CASE_VIEWED]}
    assert not _exported()
    assert client.get(response["Location"]).status_code == 200   # the code's page


def test_a_clinician_is_refused_before_any_step_up(settings, org_a, clinician_a):
    settings.LIGHTBOX_MFA_ENFORCED = True
    org_a.mfa_required_roles = []
    org_a.save()
    client, _device = stale_second_factor_client(clinician_a)
    assert client.post(reverse("audit:export_csv")).status_code == 403
    assert not _exported()
