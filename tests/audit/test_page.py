"""The audit page: org admins only, search by user, patient, case, study, action, outcome and
dates, paginated, CSV export; and the case page's access history selector."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters, case_access_history, event_page, event_search
from apps.audit.services import record
from apps.organizations.models import Role
from tests.factories import CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db


def _study(ref):
    return type("Study", (), {"public_id": ref})()


@pytest.fixture
def world(org_a, org_b, admin_a, clinician_a):
    radiologist = member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")
    patient = PatientFactory(organization=org_a, mrn="MRN-4242", name="Fictional Person")
    case1 = CaseFactory(organization=org_a, patient=patient, title="Chest CT follow-up")
    case2 = CaseFactory(organization=org_a, title="Knee MR")
    study = uuid.uuid4()
    e = {
        "view1": record(action=actions.CASE_VIEWED, actor=clinician_a, organization=org_a, target=case1),
        "viewer": record(action=actions.VIEWER_OPENED, actor=radiologist, organization=org_a, case=case1,
                         study=_study(study)),
        "denied": record(action=actions.ACCESS_DENIED, actor=radiologist, organization=org_a, target=case2,
                         outcome="denied"),
        "view2": record(action=actions.CASE_VIEWED, actor=radiologist, organization=org_a, target=case2),
        "member": record(action=actions.MEMBERSHIP_UPDATED, actor=admin_a, organization=org_a),
        "other_org": record(action=actions.CASE_VIEWED, actor=clinician_a, organization=org_b),
    }
    return {"case1": case1, "case2": case2, "patient": patient, "study": study, "radiologist": radiologist,
            "events": e}


def _found(org, **filters):
    return [ev.pk for ev in event_search(organization=org, filters=AuditFilters(**filters))]


def _ids(world, *names):
    return [world["events"][n].pk for n in names]


def test_search_by_each_criterion(world, org_a):
    w = world
    assert _found(org_a) == _ids(w, "member", "view2", "denied", "viewer", "view1")  # newest first, A only
    assert _found(org_a, user="rad@alpha") == _ids(w, "view2", "denied", "viewer")
    assert _found(org_a, patient="MRN-4242") == _ids(w, "viewer", "view1")
    assert _found(org_a, patient="fictional") == _ids(w, "viewer", "view1")
    assert _found(org_a, patient=str(w["patient"].public_id)) == _ids(w, "viewer", "view1")
    assert _found(org_a, case=str(w["case2"].public_id)) == _ids(w, "view2", "denied")
    assert _found(org_a, case="chest") == _ids(w, "viewer", "view1")
    assert _found(org_a, study=str(w["study"])) == _ids(w, "viewer")
    assert _found(org_a, study="not-a-uuid") == []
    assert _found(org_a, action=actions.CASE_VIEWED) == _ids(w, "view2", "view1")
    assert _found(org_a, outcome="denied") == _ids(w, "denied")
    assert _found(org_a, user="rad@alpha", action=actions.CASE_VIEWED) == _ids(w, "view2")
    today = timezone.localdate(w["events"]["view1"].created_at)  # the filter's day, even just past midnight
    assert len(_found(org_a, date_from=today, date_to=today)) == 5
    assert _found(org_a, date_from=today + timedelta(days=1)) == []
    assert _found(org_a, date_to=today - timedelta(days=1)) == []


def test_patient_search_stays_in_the_organization(world, org_b):
    PatientFactory(organization=org_b, mrn="MRN-4242")
    assert _found(org_b, patient="MRN-4242") == []


def test_a_search_term_matching_many_elsewhere_still_finds_the_organizations_events(org_a, org_b):
    """Text criteria are resolved to ids without a cap: 250 accounts of another organization (or
    250 patients here) matching the term first must not push the one searched for out of the
    search, which would then answer "nothing" for events that are there."""
    from apps.accounts.models import User

    User.objects.bulk_create([User(email=f"drsmith{i:03d}@beta.example") for i in range(250)])
    PatientFactory.create_batch(250, organization=org_a, name="Smithson Fictional")
    wanted = member(org_a, Role.RADIOLOGIST, email="drsmith@alpha.example")
    patient = PatientFactory(organization=org_a, name="Smithson Fictional")
    case = CaseFactory(organization=org_a, patient=patient, title="Smithson knee")
    CaseFactory.create_batch(210, organization=org_a, title="Smithson other")
    event = record(action=actions.CASE_VIEWED, actor=wanted, organization=org_a, target=case)
    assert _found(org_a, user="drsmith") == [event.pk]
    assert _found(org_a, patient="smithson") == [event.pk]
    about_patient = record(action=actions.PATIENT_CREATED, actor=wanted, organization=org_a, target=patient)
    assert _found(org_a, patient=str(patient.public_id)) == [about_patient.pk, event.pk]
    assert _found(org_a, user="drsmith") == [about_patient.pk, event.pk]
    assert _found(org_a, case="smithson") == [event.pk]


def test_page_for_admins_only_with_nav_link(world, admin_a, clinician_a, client_as):
    response = client_as(admin_a).get(reverse("audit:event_list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{reverse("audit:event_list")}"' in html  # the "Audit" navigation link
    # an e-mail address may break after its dots and @ (<wbr>, no character): its text is whole
    assert "Access denied" in html and "rad@alpha.example" in html.replace("<wbr>", "")
    assert "Fictional Person" not in html and "MRN-4242" not in html  # no patient data in the trail
    denied = client_as(clinician_a).get(reverse("audit:event_list"))
    assert denied.status_code == 403
    dashboard = client_as(clinician_a).get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("audit:event_list")}"' not in dashboard
    assert AuditEvent.objects.filter(action=actions.ACCESS_DENIED, actor=clinician_a,
                                     details__wanted="view_audit").exists()


def test_page_filters_over_http(world, admin_a, client_as):
    response = client_as(admin_a).get(reverse("audit:event_list"), {"outcome": "denied"})
    assert [ev.pk for ev in response.context["page"].events] == _ids(world, "denied")
    bad = client_as(admin_a).get(reverse("audit:event_list"), {"date_from": "2026-02-02", "date_to": "2026-01-01"})
    assert bad.status_code == 400


def test_pagination(org_a, admin_a, client_as):
    for i in range(120):
        record(action=actions.CASE_VIEWED, organization=org_a, details={"i": i})
    first = event_page(event_search(organization=org_a, filters=AuditFilters()), number=1, size=50)
    third = event_page(event_search(organization=org_a, filters=AuditFilters()), number=3, size=50)
    assert (len(first.events), first.has_next, first.total, first.more) == (50, True, 120, False)
    assert (len(third.events), third.has_next, third.start, third.end) == (20, False, 101, 120)
    assert first.events[0].details == {"i": 119}
    response = client_as(admin_a).get(reverse("audit:event_list"), {"page": "2", "action": actions.CASE_VIEWED})
    html = response.content.decode()
    assert "page=3" in html and "page=1" in html and "action=case.viewed" in html


@pytest.mark.parametrize("number", ["99999999999999999999", str(2**63 // 50 + 2), "9" * 4000])
def test_a_page_past_any_the_database_can_skip_to_is_an_empty_page(world, admin_a, client_as, number):
    response = client_as(admin_a).get(reverse("audit:event_list"), {"page": number})
    assert response.status_code == 200
    page = response.context["page"]
    assert (page.events, page.has_next, page.has_previous) == ([], False, True)
    assert page.total >= 5  # the search still counted what there is


@pytest.mark.parametrize(("field", "day"), [("date_to", "9999-12-31"), ("date_from", "0001-01-01"),
                                            ("date_from", "3000-01-01"), ("date_to", "1899-12-31")])
@pytest.mark.parametrize("zone", ["UTC", "America/Adak", "Pacific/Kiritimati"])
def test_a_search_date_the_trail_cannot_count_from_is_refused_beside_the_field(world, admin_a, client_as, settings,
                                                                                field, day, zone):
    """9999-12-31 has no next day, and 0001-01-01 west of UTC no time in UTC: both were a 500."""
    settings.TIME_ZONE = zone
    response = client_as(admin_a).get(reverse("audit:event_list"), {field: day})
    assert response.status_code == 400
    assert response.context["form"].errors[field] == ["Enter a date between the years 1900 and 2999."]


def test_a_search_date_out_of_range_is_explained_in_spanish(world, admin_a, client_as):
    client = client_as(admin_a)
    client.cookies["django_language"] = "es"
    response = client.get(reverse("audit:event_list"), {"date_to": "9999-12-31"}, HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 400
    assert "Introduzca una fecha entre los años 1900 y 2999." in response.content.decode()


def test_count_is_capped(org_a, monkeypatch):
    from apps.audit import selectors

    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    for _ in range(7):
        record(action=actions.CASE_VIEWED, organization=org_a)
    page = event_page(event_search(organization=org_a, filters=AuditFilters()), size=3)
    assert (page.total, page.more) == (5, True)


def test_csv_export_streams_the_search(world, admin_a, client_as):
    record(action="=cmd|' /C calc'!A0", organization=admin_a.memberships.get().organization)
    response = client_as(admin_a).post(reverse("audit:export_csv"), {"user": "rad@alpha"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"].startswith('attachment; filename="audit-alpha-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["id"]) for r in rows] == _ids(world, "viewer", "denied", "view2")  # oldest first
    assert rows[0]["study"] == str(world["study"]) and rows[1]["outcome"] == "denied"
    assert all(len(r["hash"]) == 64 for r in rows)
    everything = client_as(admin_a).post(reverse("audit:export_csv"))
    text = b"".join(everything.streaming_content).decode()
    assert "'=cmd" in text and "\n=cmd" not in text  # no spreadsheet formulas
    assert "Fictional Person" not in text


@pytest.mark.parametrize("name", ["audit:export_csv", "audit:export_fhir"])
def test_an_export_of_an_invalid_search_is_refused_not_the_whole_trail(world, admin_a, client_as, name):
    """A search the page refuses (its end before its start) must not export every event."""
    client = client_as(admin_a)
    bad = {"user": "rad@alpha", "date_from": "2026-03-02", "date_to": "2026-03-01"}
    page = client.get(reverse("audit:event_list"), bad)
    assert page.status_code == 400 and reverse(name) not in page.content.decode()  # no export link offered
    assert not page.context["rows"] and "Correct the search above to see events." in page.content.decode()
    before = AuditEvent.objects.filter(action=actions.AUDIT_EXPORTED).count()
    response = client.post(reverse(name), bad)
    assert response.status_code == 400 and not response.streaming
    assert "The start date is after the end date." in response.content.decode()  # why, on the page
    assert AuditEvent.objects.filter(action=actions.AUDIT_EXPORTED).count() == before  # nothing exported


def test_case_access_history(world, org_a):
    case1 = world["case1"]
    record(action=actions.NOTE_ADDED, organization=org_a, target=case1)  # not an access
    record(action=actions.DOWNLOAD_COMPLETED, organization=org_a, case=case1, study=_study(world["study"]),
           details={"bytes": 100, "completed": True})
    history = case_access_history(case1, limit=10)
    assert [e.action for e in history] == [actions.DOWNLOAD_COMPLETED, actions.VIEWER_OPENED, actions.CASE_VIEWED]
    assert [e.action for e in case_access_history(case1, limit=1)] == [actions.DOWNLOAD_COMPLETED]
    assert case_access_history(world["case2"]) == [AuditEvent.objects.get(pk=world["events"]["view2"].pk)]


def test_date_filter_uses_event_time(org_a):
    record(action=actions.CASE_VIEWED, organization=org_a)
    assert _found(org_a, date_from=date(2000, 1, 1), date_to=date(2000, 1, 2)) == []


def test_date_range_is_exact_at_day_boundaries(org_a, monkeypatch):
    from datetime import UTC, datetime

    from apps.audit import chain

    stamps = [datetime(2026, 3, d, h, tzinfo=UTC) for d, h in ((1, 0), (1, 23), (2, 0), (2, 12), (3, 0), (4, 5))]
    made = []
    for stamp in stamps:
        monkeypatch.setattr(chain.timezone, "now", lambda stamp=stamp: stamp)
        made.append(record(action=actions.CASE_VIEWED, organization=org_a).pk)
    monkeypatch.undo()
    assert _found(org_a, date_from=date(2026, 3, 2), date_to=date(2026, 3, 2)) == made[3:1:-1]
    assert _found(org_a, date_from=date(2026, 3, 2)) == made[:1:-1]
    assert _found(org_a, date_to=date(2026, 3, 1)) == made[1::-1]
    assert _found(org_a, date_from=date(2026, 3, 5)) == []
    assert _found(org_a, date_to=date(2026, 2, 28)) == []
    assert _found(org_a, date_from=date(2026, 2, 1), date_to=date(2026, 3, 3)) == made[4::-1]


def test_who_and_what_are_named_in_the_readers_language(org_a, admin_a, clinician_a, client_as):
    """The trail stores codes ("system", "anonymous", "link:<id>", the model's name); the page
    names them in the reader's language, and a person by their e-mail."""
    case = CaseFactory(organization=org_a)
    link_id = uuid.uuid4()
    record(action=actions.SHARE_EXPIRED, actor_label="system", organization=org_a, target=case)
    record(action=actions.AUTH_SIGN_IN_FAILED, actor_label="anonymous", organization=org_a, outcome="denied")
    record(action=actions.GRANT_OPENED, actor_label=f"link:{link_id}", organization=org_a, target=case)
    record(action=actions.CASE_VIEWED, actor=clinician_a, organization=org_a, target=clinician_a)
    html = client_as(admin_a).get(reverse("audit:event_list"), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    # each cell under its column's name on a phone (data-label): the cells' contents here
    cells = re.sub(r' data-label="[^"]*"', "", html.split("<tbody>", 1)[1])
    assert "<td>Sistema</td>" in cells and "<td>Visitante anónimo</td>" in cells
    assert f'Enlace para compartir <small class="mono audit-id">{str(link_id)[:9]}' in cells
    assert f"<td>{clinician_a.email}</td>" in cells.replace("<wbr>", "")  # it may break after a dot or @
    assert "<td>Caso <small" in cells and "<td>Cuenta <small" in cells
    for code in ("<td>system</td>", "<td>anonymous</td>", "link:", "<td>case <small", "<td>user <small"):
        assert code not in cells, code
    english = re.sub(r' data-label="[^"]*"', "", client_as(admin_a).get(
        reverse("audit:event_list"), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "<td>System</td>" in english and "<td>Case <small" in english


def test_every_model_is_named_on_the_audit_page_or_is_never_a_target():
    """A new model gets a name in actions.TARGETS, or is added here as never recorded as a target."""
    from django.apps import apps

    never_targets = {"auditevent", "auditchain", "notification", "grantdownload", "blob", "ingestfileresult",
                     "preparedentry", "renditionfile", "deidexportfile", "unsenttask", "renditionrun",
                     "shareconfirmation", "supersededinvitationtoken", "ssoenrolledfactor"}
    ours = {m._meta.model_name for m in apps.get_models() if m.__module__.startswith("apps.")}
    assert ours - never_targets == set(actions.TARGETS)


class _Cells(HTMLParser):
    """The text a reader sees in each body cell of the audit table (attributes left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _visible_cells(html: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(html)
    return parser.rows


@pytest.mark.parametrize("language", ["en", "es"])
def test_each_events_action_code_and_whole_ids_are_in_the_pages_text(org_a, admin_a, client_as, language):
    """On a tablet there is no hover: the action code the search and the exports use was a title
    only, and the object's and share link's ids were cut to 12 characters. Both are text now."""
    case = CaseFactory(organization=org_a)
    link_id = uuid.uuid4()
    record(action=actions.GRANT_OPENED, actor_label=f"link:{link_id}", organization=org_a, target=case,
           outcome="denied")
    record(action="legacy.unknown_action", organization=org_a)  # no label: its code, once
    html = client_as(admin_a).get(reverse("audit:event_list"), HTTP_ACCEPT_LANGUAGE=language).content.decode()
    with translation.override(language):
        label = actions.label(actions.GRANT_OPENED)
    assert label != actions.GRANT_OPENED
    rows = {row[2]: row for row in _visible_cells(html)}  # by the action cell's text
    opened = rows[f"{label}{actions.GRANT_OPENED}"]  # the name in the reader's language, then the code
    assert opened[1].endswith(str(link_id))  # the share link's id, whole
    assert opened[4].endswith(str(case.public_id))  # the object's id, whole
    assert "legacy.unknown_action" in rows  # no name: the code alone, once


def test_ids_and_codes_break_only_after_their_separators():
    from apps.audit.templatetags.audit_tags import id_breaks

    assert id_breaks("b6ea2368-a9c4-4f1e-8a2b-0123456789ab") == \
        "b6ea2368-<wbr>a9c4-<wbr>4f1e-<wbr>8a2b-<wbr>0123456789ab"
    assert id_breaks("share_link.second_factor_failed") == "share_<wbr>link.<wbr>second_<wbr>factor_<wbr>failed"
    assert id_breaks("2001:db8::1") == "2001:<wbr>db8:<wbr>:<wbr>1"
    # a visitor who opened two share links: after the comma too, never inside the second id's group
    assert id_breaks("0123456789ab,b6ea2368-a9c4") == "0123456789ab,<wbr>b6ea2368-<wbr>a9c4"
    assert id_breaks("a" * 20) == "aaaaaaaa<wbr>aaaaaaaa<wbr>aaaa"  # a hash: every 8 characters
    assert id_breaks("<b>&-x") == "&lt;b&gt;&amp;-<wbr>x"  # escaped
    assert id_breaks(None) == id_breaks("") == ""
    assert id_breaks(42) == "42"
