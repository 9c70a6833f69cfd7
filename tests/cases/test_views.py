"""Case pages: the list (filters, search, counts, tenant isolation), the case page (what it shows,
to whom, in how many queries), notes, attachments, closing and tumor-board buttons."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.cases.models import Attachment, BoardState, Case, CaseNote, Patient
from apps.organizations.models import Role
from apps.sharing.services import grant_create
from tests.factories import (
    AttachmentFactory,
    BoardSessionFactory,
    CaseFactory,
    GrantFactory,
    MembershipFactory,
    StudyFactory,
    member,
    working_in,
)

pytestmark = pytest.mark.django_db

LIST = reverse("cases:case_list")


def _page(case):
    return reverse("cases:case_detail", kwargs={"case_id": case.public_id})


def _titles(response) -> list[str]:
    return [c.title for c in response.context["page"].object_list]


# --- the list: isolation (must-show 4) ------------------------------------------------------

@pytest.fixture
def two_orgs(org_a, org_b):
    """Look-alike cases in both organizations: same words, same service line, same MRN."""
    a = [CaseFactory(organization=org_a, title=f"Lung nodule A{i}", service_line="Oncology",
                     patient__mrn=f"SAME-{i}") for i in range(3)]
    b = [CaseFactory(organization=org_b, title=f"Lung nodule B{i}", service_line="Oncology",
                     patient__mrn=f"SAME-{i}") for i in range(2)]
    Case.objects.filter(pk=b[0].pk).update(status="closed")
    return a, b


@pytest.mark.parametrize("query", ["", "?q=Lung", "?q=nodule&status=", "?q=SAME-0&status=", "?service_line=Oncology",
                                   "?status=closed", "?status=", "?modality=CT&status="])
def test_another_organizations_cases_never_appear_in_list_search_or_counts(two_orgs, admin_a, admin_b, client_as,
                                                                           query):
    a, b = two_orgs
    for case in a + b:
        StudyFactory(organization=case.organization, case=case, modalities="CT")
    for user, mine, theirs in ((admin_a, a, b), (admin_b, b, a)):
        response = client_as(user).get(LIST + query)
        assert response.status_code == 200
        titles = set(_titles(response))
        assert not titles & {c.title for c in theirs}
        body = response.content.decode()
        for case in theirs:
            assert case.title not in body and str(case.public_id) not in body
        counts = response.context["counts"]
        assert counts["total"] == len(mine)
        assert counts["closed"] == sum(c.status == "closed" for c in Case.objects.filter(pk__in=[m.pk for m in mine]))
        assert response.context["page"].paginator.count <= len(mine)
    # and the searches do find the organization's own cases (the test above is not vacuous)
    assert set(_titles(client_as(admin_a).get(LIST + "?q=SAME-0&status="))) == {"Lung nodule A0"}
    assert set(_titles(client_as(admin_b).get(LIST + "?q=Lung&status="))) == {c.title for c in b}


def test_someone_in_both_organizations_sees_only_the_active_ones(two_orgs, org_a, org_b, client_as):
    _a, b = two_orgs
    both = member(org_a, Role.RADIOLOGIST)
    MembershipFactory(user=both, organization=org_b, role=Role.RADIOLOGIST)
    client = client_as(both)
    working_in(client, org_b)
    response = client.get(LIST + "?status=")
    assert set(_titles(response)) == {c.title for c in b}
    assert response.context["counts"]["total"] == len(b)


def test_a_consultant_lists_only_the_cases_granted_to_them(org_a, clinician_a, client_as):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    granted, other = CaseFactory(organization=org_a), CaseFactory(organization=org_a)
    GrantFactory(organization=org_a, case=granted, grantee=consultant)
    response = client_as(consultant).get(LIST + "?status=")
    assert _titles(response) == [granted.title]
    assert response.context["counts"] == {"total": 1, "open": 1, "closed": 0}
    assert client_as(consultant).get(_page(other)).status_code == 404
    assert client_as(consultant).get(_page(granted)).status_code == 200


def test_the_modality_filter_looks_only_at_the_studies_a_share_names(org_a, clinician_a, client_as):
    # a share naming the CT of a case must not let its holder learn, by filtering, that the case
    # also holds a PET study that was not shared
    case = CaseFactory(organization=org_a, title="Staging")
    ct = StudyFactory(organization=org_a, case=case, modalities="CT")
    StudyFactory(organization=org_a, case=case, modalities="PT")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    grant_create(case=case, grantee=consultant, permissions=["view"], by=clinician_a, studies=[ct],
                 expires_at=timezone.now() + timedelta(hours=5))
    client = client_as(consultant)
    assert _titles(client.get(LIST + "?status=&modality=CT")) == ["Staging"]
    assert _titles(client.get(LIST + "?status=&modality=PT")) == []
    # staff of the organization see every study, so the case is found by either
    assert _titles(client_as(clinician_a).get(LIST + "?status=&modality=PT")) == ["Staging"]


# --- the list: filters, search, pagination --------------------------------------------------

def test_filters_and_search(org_a, clinician_a, client_as):
    # fixed names: generated ones could contain the search words
    ct = CaseFactory(organization=org_a, title="Chest CT", service_line="Thoracic", referred_by="Dr. Quillfeather",
                     patient__name="Ann Example")
    mr = CaseFactory(organization=org_a, title="Brain MR", service_line="Neuro", patient__name="Zyxwin Fict")
    old = CaseFactory(organization=org_a, title="Old case", service_line="Thoracic", patient__name="Bo Example")
    Case.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400), status="closed")
    StudyFactory(organization=org_a, case=ct, modalities="CT,PT")
    StudyFactory(organization=org_a, case=mr, modalities="MR")
    client = client_as(clinician_a)
    assert set(_titles(client.get(LIST))) == {"Chest CT", "Brain MR"}  # open cases by default
    assert set(_titles(client.get(LIST + "?status="))) == {"Chest CT", "Brain MR", "Old case"}
    assert _titles(client.get(LIST + "?status=closed")) == ["Old case"]
    assert set(_titles(client.get(LIST + "?status=&service_line=Thoracic"))) == {"Chest CT", "Old case"}
    assert _titles(client.get(LIST + "?status=&modality=PT")) == ["Chest CT"]
    assert _titles(client.get(LIST + "?status=&modality=mr")) == ["Brain MR"]
    since = (timezone.now() - timedelta(days=30)).date().isoformat()
    assert set(_titles(client.get(LIST + f"?status=&opened_from={since}"))) == {"Chest CT", "Brain MR"}
    until = (timezone.now() - timedelta(days=300)).date().isoformat()
    assert _titles(client.get(LIST + f"?status=&opened_to={until}")) == ["Old case"]
    assert _titles(client.get(LIST + "?status=&q=zyxwin")) == ["Brain MR"]          # patient name
    assert _titles(client.get(LIST + "?status=&q=quillfeather")) == ["Chest CT"]    # referred by
    assert _titles(client.get(LIST + f"?status=&q={mr.patient.mrn}")) == ["Brain MR"]


def _empty_note(response) -> str:
    html = response.content.decode()
    start = html.index('data-testid="no-cases">') + len('data-testid="no-cases">')
    return html[start:html.index("</p>", start)]


def test_an_empty_list_says_whether_nothing_matched_or_there_is_no_case_yet(org_a, clinician_a, client_as):
    """"No case matches" on an organization with no case at all sent people looking for a filter."""
    coordinator = member(org_a, Role.COORDINATOR)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    assert _empty_note(client_as(coordinator).get(LIST)) == (
        "No case yet. Open one with New case, then upload its studies.")
    assert _empty_note(client_as(consultant).get(LIST)) == "No case yet."  # may not open one
    CaseFactory(organization=org_a, title="Chest CT")
    assert _empty_note(client_as(coordinator).get(LIST + "?status=closed")) == "No case matches."


def test_the_list_is_paginated(org_a, clinician_a, client_as):
    for i in range(30):
        CaseFactory(organization=org_a, title=f"Case {i:02d}")
    client = client_as(clinician_a)
    first, second = client.get(LIST + "?status=open"), client.get(LIST + "?status=open&page=2")
    assert len(_titles(first)) == 25 and len(_titles(second)) == 5
    assert not set(_titles(first)) & set(_titles(second))
    assert "status=open&amp;page=2" in first.content.decode()


# --- the case page --------------------------------------------------------------------------

def test_the_case_page_shows_the_context_first_and_records_the_view(org_a, clinician_a, client_as):
    case = CaseFactory(organization=org_a, title="Chest CT - second opinion", referred_by="Dr. Lee, Riverside",
                       referring_question="Has the nodule grown?", service_line="Thoracic oncology")
    CaseNote.objects.create(organization=org_a, case=case, author=clinician_a, body="Prior CT attached.")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Quinn External")
    grant_create(case=case, grantee=consultant, permissions=["view"], by=clinician_a,
                 expires_at=timezone.now() + timedelta(days=2))
    response = client_as(clinician_a).get(_page(case))
    assert response.status_code == 200
    body = response.content.decode()
    # the clinical question, who sent it and the service line come before studies and notes
    positions = [body.index(s) for s in ("Has the nodule grown?", "Dr. Lee, Riverside", "Thoracic oncology",
                                         'id="studies-heading"', "Prior CT attached.", "Quinn External")]
    assert positions == sorted(positions)
    event = AuditEvent.objects.filter(action="case.viewed").get()
    assert event.case_ref == case.public_id and event.actor == clinician_a
    assert case.patient.name not in json.dumps(event.details)
    # the view itself now appears in the page's access history, by its label
    history = client_as(clinician_a).get(_page(case)).content.decode().split('id="history"', 1)[1]
    # each cell under its column's name on a phone (data-label): the cells' contents here
    history = re.sub(r' data-(label|testid)="[^"]*"', "", history)
    assert "<td>Case page viewed</td>" in history


def test_a_refused_case_page_is_404_and_recorded(org_a, org_b, admin_b, client_as):
    case = CaseFactory(organization=org_a)
    assert client_as(admin_b).get(_page(case)).status_code == 404
    denial = AuditEvent.objects.get(action="access.denied")
    assert denial.case_ref == case.public_id and denial.actor == admin_b and denial.outcome == "denied"
    assert denial.organization_id == org_a.pk


def test_a_consultant_sees_their_own_access_not_the_participants_or_history(org_a, clinician_a, client_as):
    case = CaseFactory(organization=org_a)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    other = member(org_a, Role.EXTERNAL_CONSULTANT, full_name="Another Outsider")
    for user in (consultant, other):
        grant_create(case=case, grantee=user, permissions=["view"], by=clinician_a,
                     expires_at=timezone.now() + timedelta(days=2))
    response = client_as(consultant).get(_page(case))
    body = response.content.decode()
    assert 'data-testid="my-access"' in body
    assert "Another Outsider" not in body and 'id="history"' not in body
    assert 'id="participants"' in client_as(clinician_a).get(_page(case)).content.decode()


def test_the_access_history_names_actors_without_a_person_in_the_readers_language(org_a, clinician_a, client_as):
    """The trail stores codes for who acted without a person ("system", "link:<id>") and for what
    was done ("share.expired"); the case page's history names them as the audit page does, never
    shows the code (not even in a hover title). A share link's id is shown whole, broken where the
    audit page breaks it (``id_breaks``): cut to 12 characters, a security officer could not match
    it with the audit page's."""
    from apps.audit.templatetags.audit_tags import id_breaks

    case = CaseFactory(organization=org_a)
    link_id = uuid.uuid4()
    record(action=actions.SHARE_EXPIRED, actor_label="system", organization=org_a, target=case)
    record(action=actions.GRANT_OPENED, actor_label=f"link:{link_id}", organization=org_a, target=case)
    html = client_as(clinician_a).get(_page(case), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    history = re.sub(r' data-(label|testid)="[^"]*"', "", html.split('id="history"', 1)[1])
    assert "<td>Sistema</td>" in history
    assert f'Enlace para compartir <small class="mono audit-id">{id_breaks(link_id)}</small>' in history
    assert "…" not in history
    assert "<td>system</td>" not in history and f"link:{link_id}" not in history
    assert "<td>Acceso compartido caducado</td>" in history
    assert actions.SHARE_EXPIRED not in history and actions.GRANT_OPENED not in history


def test_a_coordinator_sees_status_not_studies_or_documents(org_a, client_as):
    case = CaseFactory(organization=org_a)
    StudyFactory(organization=org_a, case=case, study_description="Secret pixels")
    AttachmentFactory(organization=org_a, case=case, filename="report.pdf")
    coordinator = member(org_a, Role.COORDINATOR)
    body = client_as(coordinator).get(_page(case)).content.decode()
    assert "Secret pixels" not in body and "report.pdf" not in body
    assert "status, not its images" in body


def test_an_org_admin_reaches_a_study_to_delete_from_the_case_page_without_the_viewer(org_a, admin_a, client_as):
    """Org admins may delete a study (DELETE_STUDY) but see no pixels: the case page lists the
    case's studies to them, each leading to its page (where "Delete study" is), with no viewer
    link. Before, it said "status, not its images" and the study page was reachable by URL only."""
    case = CaseFactory(organization=org_a)
    study = StudyFactory(organization=org_a, case=case, study_description="Wrong-patient CT")
    body = client_as(admin_a).get(_page(case)).content.decode()
    assert "Wrong-patient CT" in body
    assert reverse("imaging:study_detail", kwargs={"study_id": study.public_id}) in body
    assert reverse("viewer:viewer", kwargs={"study_id": study.public_id}) not in body
    assert "status, not its images" not in body


def test_a_study_scoped_grantee_sees_only_the_shared_studies_on_the_case_page(org_a, clinician_a, client_as):
    """A grant naming one study of a case lists that study on the case page, not the case's
    others (as the study pages, the viewer and the shared-case page already refuse them)."""
    case = CaseFactory(organization=org_a)
    shared = StudyFactory(organization=org_a, case=case, study_description="Shared chest CT")
    StudyFactory(organization=org_a, case=case, study_description="Unshared brain MR")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    grant_create(case=case, grantee=consultant, permissions=["view"], by=clinician_a, studies=[shared],
                 expires_at=timezone.now() + timedelta(days=2))
    body = client_as(consultant).get(_page(case)).content.decode()
    assert "Shared chest CT" in body
    assert "Unshared brain MR" not in body
    staff = client_as(clinician_a).get(_page(case)).content.decode()
    assert "Shared chest CT" in staff and "Unshared brain MR" in staff


def _case_with(org, author, n_studies: int, n_notes: int = 200):
    case = CaseFactory(organization=org)
    for i in range(n_studies):
        StudyFactory(organization=org, case=case, study_description=f"Study {i}", modalities="CT")
    CaseNote.objects.bulk_create([CaseNote(organization=org, case=case, author=author, body=f"note {i}")
                                  for i in range(n_notes)])
    for _ in range(3):
        grant_create(case=case, grantee=member(org, Role.EXTERNAL_CONSULTANT), permissions=["view"], by=author,
                     expires_at=timezone.now() + timedelta(days=2))
    AttachmentFactory(organization=org, case=case)
    board = BoardSessionFactory(organization=org, host=author)
    board.cases.add(case)
    return case


QUERY_BOUND = 28  # 30 before the page asked the policy about its buttons at once (policy.can_actions)


def test_the_case_page_needs_a_bounded_number_of_queries_whatever_the_number_of_studies(
        org_a, clinician_a, client_as, django_assert_max_num_queries):
    small, large = _case_with(org_a, clinician_a, 5), _case_with(org_a, clinician_a, 50)
    client = client_as(clinician_a)
    client.get(_page(small))  # warm the session and the content types
    counts = {}
    for n, case in ((5, small), (50, large)):
        with django_assert_max_num_queries(QUERY_BOUND), CaptureQueriesContext(connection) as ctx:
            response = client.get(_page(case))
        assert response.status_code == 200
        page = response.context["page"]
        assert len(page.studies) == n and len(page.participants) == 3
        assert len(page.notes) == 50 and page.notes.paginator.count == 200  # the newest 50 of the 200
        assert response.content.decode().count('data-testid="study"') == n
        counts[n] = len(ctx.captured_queries)
    assert counts[5] == counts[50], counts
    print(f"case page queries: {counts}")


# --- notes, attachments ---------------------------------------------------------------------

def test_adding_a_note_from_the_page(org_a, clinician_a, client_as):
    case = CaseFactory(organization=org_a)
    url = reverse("cases:note_add", kwargs={"case_id": case.public_id})
    response = client_as(clinician_a).post(url, {"kind": "report", "body": "No growth in 12 months."})
    assert response.status_code == 302
    note = CaseNote.objects.get()
    assert (note.author, note.kind, note.body) == (clinician_a, "report", "No growth in 12 months.")
    assert client_as(clinician_a).post(url, {"kind": "note", "body": "  "}).status_code == 400
    assert CaseNote.objects.count() == 1
    outsider = member(org_a, Role.EXTERNAL_CONSULTANT)  # no grant on this case
    assert client_as(outsider).post(url, {"kind": "note", "body": "hi"}).status_code == 404
    assert CaseNote.objects.count() == 1


def test_a_refused_note_or_document_is_explained_beside_its_form(org_a, clinician_a, client_as):
    """The error is shown at the form's field (aria-invalid, described by it), not only as a
    message at the top of a page scrolled to the notes; the kind chosen stays chosen."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    case = CaseFactory(organization=org_a)
    client = client_as(clinician_a)
    response = client.post(reverse("cases:note_add", kwargs={"case_id": case.public_id}),
                           {"kind": "report", "body": "   "})
    assert response.status_code == 400 and not CaseNote.objects.exists()
    html = response.content.decode()
    assert 'id="note_body_error"' in html and 'aria-describedby="note_body_error"' in html
    assert '<option value="report" selected>' in html
    response = client.post(reverse("cases:attachment_add", kwargs={"case_id": case.public_id}),
                           {"kind": "annotated", "file": SimpleUploadedFile("x.pdf", b"<html>")})
    assert response.status_code == 400 and not Attachment.objects.exists()
    html = response.content.decode()
    assert 'id="attachment_file_error"' in html and "Attach a PDF, PNG or JPEG file." in html
    assert '<option value="annotated" selected>' in html


@pytest.mark.parametrize("form", ["note", "note_invalid", "attachment", "attachment_invalid"])
def test_a_refused_note_or_document_leaves_a_denial_in_the_audit_trail(org_a, clinician_a, client_as, form):
    """Someone who sees a case but may not write on it (here: it is closed) is refused a note or
    a document, and every refusal is recorded, also when the form was invalid too (the page that
    would show its errors was refused with no record)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    case = CaseFactory(organization=org_a, status="closed")
    kind, _sep, invalid = form.partition("_")
    if kind == "note":
        data = {"kind": "note", "body": "  " if invalid else "Looks stable."}
    else:
        data = {"kind": "report", "file": SimpleUploadedFile("r.pdf", b"%PDF-1.4 report")}
        if invalid:
            data["kind"] = "no-such-kind"
    response = client_as(clinician_a).post(reverse(f"cases:{kind}_add", kwargs={"case_id": case.public_id}), data)
    assert response.status_code == 403
    assert not CaseNote.objects.exists() and not Attachment.objects.exists()
    denial = AuditEvent.objects.get(action="access.denied")
    assert (denial.actor, denial.outcome, denial.target_id) == (clinician_a, "denied", str(case.public_id))
    assert denial.details == {"wanted": "add_note" if kind == "note" else "attach_document"}


def test_attachments_are_stored_encrypted_served_by_policy_and_audited(org_a, org_b, clinician_a, client_as,
                                                                     tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.imaging.blobs import open_blob

    case = CaseFactory(organization=org_a)
    pdf = b"%PDF-1.4\n" + b"generated report body " * 200
    url = reverse("cases:attachment_add", kwargs={"case_id": case.public_id})
    response = client_as(clinician_a).post(url, {"kind": "report", "file": SimpleUploadedFile("r.pdf", pdf)})
    assert response.status_code == 302
    attachment = Attachment.objects.get()
    assert attachment.size == len(pdf) and attachment.content_type == "application/pdf"
    assert open_blob(attachment.blob).read() == pdf
    # a file that is not a PDF or image is refused, whatever its name says
    client_as(clinician_a).post(url, {"kind": "report", "file": SimpleUploadedFile("x.pdf", b"<html>")})
    assert Attachment.objects.count() == 1

    download = reverse("cases:attachment_download", kwargs={"attachment_id": attachment.public_id})
    response = client_as(clinician_a).get(download)
    assert response.status_code == 200 and b"".join(response.streaming_content) == pdf
    assert response["Content-Type"] == "application/pdf" and "attachment" in response["Content-Disposition"]
    coordinator = member(org_a, Role.COORDINATOR)
    assert client_as(coordinator).get(download).status_code == 403
    assert client_as(member(org_b, Role.CLINICIAN)).get(download).status_code == 404
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    assert client_as(consultant).get(download).status_code == 404
    grant = grant_create(case=case, grantee=consultant, permissions=["view"], by=clinician_a,
                         expires_at=timezone.now() + timedelta(days=1))
    assert client_as(consultant).get(download).status_code == 200
    from apps.sharing.services import grants_revoke

    grants_revoke(grants=[grant], by=clinician_a, reason="test")
    assert client_as(consultant).get(download).status_code == 404
    actions = list(AuditEvent.objects.filter(case_ref=case.public_id, action__startswith="attachment.")
                   .values_list("action", flat=True))
    assert actions == ["attachment.added", "attachment.downloaded", "attachment.downloaded"]


def test_a_refused_attachment_download_is_recorded(org_a, org_b, clinician_a, client_as):
    """A report asked for after the share was revoked, or by another organization, is a 404 as
    before, and now recorded in the attachment's organization's trail (as a refused case page is;
    a refused study download was already)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.sharing.services import grants_revoke

    case = CaseFactory(organization=org_a)
    client_as(clinician_a).post(reverse("cases:attachment_add", kwargs={"case_id": case.public_id}),
                                {"kind": "report", "file": SimpleUploadedFile("r.pdf", b"%PDF-1.4\n" + b"x" * 100)})
    attachment = Attachment.objects.get()
    download = reverse("cases:attachment_download", kwargs={"attachment_id": attachment.public_id})
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    grant = grant_create(case=case, grantee=consultant, permissions=["view"], by=clinician_a,
                         expires_at=timezone.now() + timedelta(days=1))
    assert client_as(consultant).get(download).status_code == 200
    grants_revoke(grants=[grant], by=clinician_a, reason="test")
    outsider = member(org_b, Role.CLINICIAN)
    for user in (consultant, outsider):
        assert client_as(user).get(download).status_code == 404
    denials = AuditEvent.objects.filter(action="access.denied").order_by("id")
    assert [(e.actor, e.organization_id, e.target_type, e.target_id, e.case_ref, e.details["wanted"])
            for e in denials] == [
        (user, org_a.pk, "attachment", str(attachment.public_id), case.public_id, "view_images")
        for user in (consultant, outsider)]
    assert client_as(outsider).get(reverse("cases:attachment_download", kwargs={"attachment_id": uuid.uuid4()})
                                   ).status_code == 404
    assert denials.count() == 2  # nothing to record for an attachment that does not exist


def test_a_board_page_refused_after_the_participants_membership_ended_is_recorded(org_a, admin_a, client_as):
    """An ended board's page still opens to its participants (tests/cases/test_board_after_end.py),
    not once their membership there ended."""
    from apps.cases import services
    from apps.organizations.models import Membership
    from apps.organizations.services import membership_update

    host = member(org_a, Role.RADIOLOGIST)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    board = services.board_create(organization=org_a, by=host, host=host, title="Board",
                                  meeting_at=timezone.now() + timedelta(hours=2), review_days=5,
                                  cases=[CaseFactory(organization=org_a)], participants=[consultant])
    url = reverse("cases:board_detail", args=[board.public_id])
    services.board_start(board=board, by=host)
    assert client_as(consultant).get(url).status_code == 200
    services.board_end(board=board, by=host)
    assert client_as(consultant).get(url).status_code == 200
    membership_update(membership=Membership.objects.get(user=consultant, organization=org_a), by=admin_a,
                      role=Role.EXTERNAL_CONSULTANT, is_active=False)
    assert client_as(consultant).get(url).status_code == 404
    denial = AuditEvent.objects.get(action="access.denied")
    assert (denial.actor, denial.organization_id, denial.target_type, denial.target_id) == (
        consultant, org_a.pk, "boardsession", str(board.public_id))


# --- create, edit, close from the pages -----------------------------------------------------

def test_creating_a_case_with_a_new_then_a_known_patient(org_a, clinician_a, client_as):
    client = client_as(clinician_a)
    url = reverse("cases:case_create")
    data = {"mrn": "NW-1", "patient_name": "Sam Fict", "title": "Chest CT", "referring_question": "Nodule?",
            "referred_by": "Dr. Lee", "service_line": "Thoracic", "responsible_clinician": clinician_a.pk}
    response = client.post(url, data)
    case = Case.objects.get()
    assert response.status_code == 302 and response["Location"] == _page(case)
    assert case.responsible_clinician == clinician_a and case.created_by == clinician_a
    client.post(url, {**data, "patient_name": "", "title": "Follow-up"})
    assert Patient.objects.count() == 1 and Case.objects.count() == 2
    response = client.post(url, {**data, "mrn": "NW-2", "patient_name": "", "title": "x"})
    assert response.status_code == 400 and Case.objects.count() == 2
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    assert client_as(consultant).get(url).status_code == 403


def test_editing_and_closing_from_the_page(org_a, clinician_a, client_as):
    case = CaseFactory(organization=org_a, title="Before")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    grant_create(case=case, grantee=consultant, permissions=["view"], by=clinician_a,
                 expires_at=timezone.now() + timedelta(days=1))
    client = client_as(clinician_a)
    edit = reverse("cases:case_edit", kwargs={"case_id": case.public_id})
    assert client.get(edit).status_code == 200
    response = client.post(edit, {"title": "After", "referring_question": "Q", "service_line": "Neuro"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.title, case.service_line) == ("After", "Neuro")
    assert client_as(consultant).post(edit, {"title": "Hacked"}).status_code == 403
    assert client_as(consultant).get(_page(case)).status_code == 200
    client.post(reverse("cases:case_close", kwargs={"case_id": case.public_id}))
    case.refresh_from_db()
    assert case.status == "closed"
    assert client_as(consultant).get(_page(case)).status_code == 404
    client.post(reverse("cases:case_reopen", kwargs={"case_id": case.public_id}))
    case.refresh_from_db()
    assert case.is_open and client_as(consultant).get(_page(case)).status_code == 404


def test_closing_a_case_is_asked_first_on_a_page_that_names_whose_access_ends(org_a, org_b, clinician_a, client_as):
    """GET of the close URL changes nothing: it lists the grants closing would end (live or yet to
    start; not one already expired or revoked) and the button; the POST closes. Whoever may not
    manage the case is refused (403), another organization's member gets 404, and a closed case
    sends back to its page."""
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="live@consult.example")
    later = member(org_a, Role.EXTERNAL_CONSULTANT, email="later@consult.example")
    gone = member(org_a, Role.EXTERNAL_CONSULTANT, email="expired@consult.example")
    now = timezone.now()
    live = grant_create(case=case, grantee=consultant, permissions=["view"], by=clinician_a,
                        expires_at=now + timedelta(days=1))
    grant_create(case=case, grantee=later, permissions=["view"], by=clinician_a,
                 starts_at=now + timedelta(hours=2), expires_at=now + timedelta(days=2))
    expired = grant_create(case=case, grantee=gone, permissions=["view"], by=clinician_a,
                           expires_at=now + timedelta(days=1))
    type(expired).objects.filter(pk=expired.pk).update(expires_at=now - timedelta(minutes=1))
    close = reverse("cases:case_close", kwargs={"case_id": case.public_id})
    response = client_as(clinician_a).get(close)
    assert response.status_code == 200
    text = response.content.decode()
    assert "live@consult.example" in text and "later@consult.example" in text
    assert "expired@consult.example" not in text
    case.refresh_from_db()
    live.refresh_from_db()
    assert case.is_open and live.revoked_at is None
    assert client_as(consultant).get(close).status_code == 403  # sees the case, may not close it
    assert client_as(member(org_b, Role.CLINICIAN)).get(close).status_code == 404
    assert client_as(clinician_a).post(close).status_code == 302
    case.refresh_from_db()
    live.refresh_from_db()
    assert not case.is_open and live.revoked_at is not None
    response = client_as(clinician_a).get(close)
    assert response.status_code == 302 and response["Location"] == _page(case)


# --- tumor boards from the pages ------------------------------------------------------------

def test_scheduling_starting_and_ending_a_board_from_the_pages(org_a, client_as):
    host = member(org_a, Role.RADIOLOGIST)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a)
    client = client_as(host)
    response = client.post(reverse("cases:board_create"), {
        "title": "Thoracic board", "meeting_at": "2030-01-15T16:00", "review_days": "5", "host": host.pk,
        "cases": [case.pk], "participants": [consultant.pk]})
    assert response.status_code == 302, response.content.decode()[:2000]
    board = case.board_sessions.get()
    detail = reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})
    assert client.get(detail).status_code == 200
    assert client_as(consultant).get(detail).status_code == 404  # not live yet
    client.post(reverse("cases:board_start", kwargs={"boardsession_id": board.public_id}))
    board.refresh_from_db()
    assert board.state == BoardState.LIVE
    assert client_as(consultant).get(detail).status_code == 200
    assert client_as(consultant).get(_page(case)).status_code == 200
    assert client_as(consultant).post(
        reverse("cases:board_end", kwargs={"boardsession_id": board.public_id})).status_code == 403
    client.post(reverse("cases:board_end", kwargs={"boardsession_id": board.public_id}))
    assert client_as(consultant).get(_page(case)).status_code == 404
    ended = client_as(consultant).get(detail)  # still theirs to find, saying their access ended
    assert ended.status_code == 200 and 'data-testid="board-ended"' in ended.content.decode()
    listing = client.get(reverse("cases:board_list"))
    assert "Thoracic board" in listing.content.decode()


def test_a_coordinator_ends_from_the_page_a_live_board_whose_host_was_deactivated(org_a, client_as):
    """The board page offers "End meeting" to whoever may end it (the host, or anyone who may
    manage cases there), not only to the host: a meeting whose host left mid-meeting is ended by
    a coordinator, its grants revoked at once. A participant gets no button and is refused
    (recorded)."""
    from apps.cases import services
    from apps.organizations.models import Membership

    host = member(org_a, Role.RADIOLOGIST)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    coordinator = member(org_a, Role.COORDINATOR)
    case = CaseFactory(organization=org_a)
    board = BoardSessionFactory(organization=org_a, host=host)
    board.cases.add(case)
    board.participants.add(consultant)
    services.board_start(board=board, by=host)
    Membership.objects.filter(user=host, organization=org_a).update(is_active=False)
    detail = reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})
    end = reverse("cases:board_end", kwargs={"boardsession_id": board.public_id})
    end_button = "End the meeting now</button>"

    page = client_as(consultant).get(detail)
    assert page.status_code == 200 and end_button not in page.content.decode()
    assert client_as(consultant).post(end).status_code == 403
    assert AuditEvent.objects.filter(action="access.denied", actor=consultant,
                                     details__wanted="end_board").count() == 1
    board.refresh_from_db()
    assert board.state == BoardState.LIVE

    page = client_as(coordinator).get(detail).content.decode()
    assert end_button in page and "Start meeting" not in page
    assert client_as(coordinator).post(end).status_code == 302
    board.refresh_from_db()
    assert board.state == BoardState.ENDED
    assert not board.grants.filter(revoked_at__isnull=True).exists()
    assert client_as(consultant).get(_page(case)).status_code == 404
    assert AuditEvent.objects.get(action="board.ended").actor == coordinator
    assert end_button not in client_as(coordinator).get(detail).content.decode()


def test_ending_a_meeting_is_asked_twice_and_says_what_it_does(org_a, client_as):
    # one tap on "End meeting" took every participant's access away, for good (found by QA): the
    # button opens a confirmation that says so, whose own button ends the meeting
    from apps.cases import services

    host = member(org_a, Role.RADIOLOGIST)
    board = BoardSessionFactory(organization=org_a, host=host)
    board.cases.add(CaseFactory(organization=org_a))
    board.participants.add(member(org_a, Role.EXTERNAL_CONSULTANT))
    services.board_start(board=board, by=host)
    page = client_as(host).get(reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id}))
    html = page.content.decode()
    confirm = html.split('data-testid="end-meeting"', 1)[1].split("</details>", 1)[0]
    assert "End meeting</summary>" in confirm
    assert "an ended meeting cannot be started again" in confirm and "End the meeting now</button>" in confirm


def test_a_board_is_edited_while_scheduled_only(org_a, client_as):
    host = member(org_a, Role.COORDINATOR)  # coordinators run boards too
    case = CaseFactory(organization=org_a)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    board = BoardSessionFactory(organization=org_a, host=host, title="Before")
    edit = reverse("cases:board_edit", kwargs={"boardsession_id": board.public_id})
    client = client_as(host)
    assert client.get(edit).status_code == 200
    response = client.post(edit, {"title": "After", "meeting_at": "2030-02-01T08:30", "review_days": "7",
                                  "host": host.pk, "cases": [case.pk], "participants": [consultant.pk]})
    assert response.status_code == 302
    board.refresh_from_db()
    assert board.title == "After" and list(board.cases.all()) == [case]
    assert list(board.participants.all()) == [consultant]
    assert client.post(edit, {"title": "x", "meeting_at": "2030-02-01T08:30", "review_days": "30",
                              "host": host.pk}).status_code == 400
    assert client_as(consultant).get(edit).status_code == 404
    client.post(reverse("cases:board_start", kwargs={"boardsession_id": board.public_id}))
    assert client_as(consultant).get(edit).status_code == 403  # sees the live board, may not edit it
    response = client.post(edit, {"title": "Changed while live", "meeting_at": "2030-02-01T08:30",
                                  "review_days": "7", "host": host.pk})
    board.refresh_from_db()
    assert response.status_code == 302 and board.title == "After"
    assert BoardState.LIVE == board.state


def test_everyone_sees_the_latest_version_of_a_study(org_a, clinician_a, client_as):
    case = CaseFactory(organization=org_a)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    GrantFactory(organization=org_a, case=case, grantee=consultant)
    v1 = StudyFactory(organization=org_a, case=case, study_description="CT chest", version=1)
    v2 = StudyFactory(organization=org_a, case=case, study_description="CT chest",
                      study_instance_uid=v1.study_instance_uid, version=2, previous=v1)
    for user in (clinician_a, consultant):
        studies = client_as(user).get(_page(case)).context["page"].studies
        assert [s.pk for s in studies] == [v2.pk]
