"""Reading an upload's per-file report is recorded (``upload_report.viewed``): its file names often
name the patient, and the study page showing the same report records ``study.viewed``. The report
page records each view (target the ingest job); the upload's status as JSON (GET on its tus URL),
which the upload page polls every few seconds while the ingest runs, once per browser session and
upload (target the upload). A reader refused (404, 403) reads nothing and is not recorded as
reading. The probes of uploads and cases the tus endpoint hides are recorded where they exist
(``access.denied``, as the study page's attach and the case page record them), with the same
answer as for what does not exist."""

from __future__ import annotations

import base64
import uuid

import pytest
from django.urls import reverse

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.imaging.models import FileOutcome, IngestFileResult, JobState, Upload
from apps.organizations.models import Membership, Role
from tests.factories import CaseFactory, IngestJobFactory, member
from tests.imaging.test_bad_input import _upload

pytestmark = pytest.mark.django_db
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
UPLOADS = "/api/v1/uploads/"


@pytest.fixture
def uploader(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


def _events(after: int, action: str | None = None):
    qs = AuditEvent.objects.filter(pk__gt=after).order_by("pk")
    return list(qs.filter(action=action) if action else qs)


def _last() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


# --- the report page ---------------------------------------------------------------------------

def test_each_view_of_the_report_page_is_recorded(client_as, org_a, uploader):
    job = IngestJobFactory(organization=org_a, created_by=uploader, state=JobState.DONE)
    IngestFileResult.objects.create(job=job, path="DOE_JOHN/IM1.dcm", outcome=FileOutcome.SKIPPED, reason="x")
    reader = member(org_a, Role.CLINICIAN, email="reader@alpha.example")
    c = client_as(reader)
    url = reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id})
    before = _last()
    r = c.get(url)
    assert r.status_code == 200 and b"DOE_JOHN/IM1.dcm" in r.content
    [event] = _events(before)
    assert (event.action, event.actor_id, event.organization_id, event.outcome) == (
        A.UPLOAD_REPORT_VIEWED, reader.pk, org_a.pk, "allowed")
    assert (event.target_type, event.target_id) == ("ingestjob", str(job.public_id))
    assert "DOE" not in str(event.details)
    assert c.get(url + "?lines=1").status_code == 200  # another page of it, another view
    assert len(_events(before, A.UPLOAD_REPORT_VIEWED)) == 2


@pytest.mark.parametrize(("role", "org", "status"), [
    (Role.ORG_ADMIN, "a", 403), (Role.EXTERNAL_CONSULTANT, "a", 404), (Role.RADIOLOGIST, "b", 404)])
def test_a_refused_reader_of_the_report_page_is_not_recorded_as_reading_it(
        client_as, org_a, org_b, uploader, role, org, status):
    job = IngestJobFactory(organization=org_a, created_by=uploader, state=JobState.DONE)
    IngestFileResult.objects.create(job=job, path="DOE_JOHN/IM1.dcm", outcome=FileOutcome.SKIPPED, reason="x")
    before = _last()
    r = client_as(member(org_a if org == "a" else org_b, role)).get(
        reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id}))
    assert r.status_code == status
    assert _events(before, A.UPLOAD_REPORT_VIEWED) == []


# --- the status JSON ---------------------------------------------------------------------------

def test_the_status_is_recorded_once_per_session_and_upload(client_as, uploader, small_ct,
                                                            django_capture_on_commit_callbacks):
    files = sorted(small_ct.iterdir())
    c = client_as(uploader)
    with django_capture_on_commit_callbacks(execute=True):
        job = _upload(c, files[0].read_bytes(), "DOE_JOHN.dcm")
        other = _upload(c, files[1].read_bytes(), "DOE_JANE.dcm")
    url = reverse("imaging:tus_upload", kwargs={"upload_id": job.upload.public_id})
    before = _last()
    for _ in range(3):  # the upload page polls
        r = c.get(url)
        assert r.status_code == 200 and r.json()["filename"] == "DOE_JOHN.dcm"
    [event] = _events(before, A.UPLOAD_REPORT_VIEWED)
    assert (event.actor_id, event.organization_id, event.target_type, event.target_id) == (
        uploader.pk, job.organization_id, "upload", str(job.upload.public_id))
    assert "DOE" not in str(event.details)
    c.get(reverse("imaging:tus_upload", kwargs={"upload_id": other.upload.public_id}))  # another upload
    assert len(_events(before, A.UPLOAD_REPORT_VIEWED)) == 2
    colleague = client_as(member(job.organization, Role.CLINICIAN))  # another session
    assert colleague.get(url).status_code == 200
    assert colleague.get(url).status_code == 200
    assert len(_events(before, A.UPLOAD_REPORT_VIEWED)) == 3
    assert client_as(uploader).get(url).status_code == 200  # the uploader signed in again: a new session
    assert len(_events(before, A.UPLOAD_REPORT_VIEWED)) == 4


def test_a_refused_reader_of_the_status_is_not_recorded_as_reading_it(client_as, org_a, org_b, uploader):
    c = client_as(uploader)
    r = c.post(UPLOADS, HTTP_UPLOAD_LENGTH="10", **TUS)
    url = r["Location"].split("testserver", 1)[-1]
    before = _last()
    assert client_as(member(org_a, Role.EXTERNAL_CONSULTANT)).get(url).status_code == 404
    assert client_as(member(org_b, Role.RADIOLOGIST)).get(url).status_code == 404
    assert _events(before, A.UPLOAD_REPORT_VIEWED) == []


# --- probes of what the tus endpoint hides -----------------------------------------------------

def _meta_case(public_id) -> str:
    return "case " + base64.b64encode(str(public_id).encode()).decode()


def test_naming_another_organizations_case_is_recorded_there_and_answered_as_no_case(
        client_as, clinician_a, org_a, org_b):
    other = CaseFactory(organization=org_b)
    c = client_as(clinician_a)
    before = _last()
    probe = c.post(UPLOADS, HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_meta_case(other.public_id), **TUS)
    [event] = _events(before)
    assert (event.action, event.outcome, event.actor_id, event.organization_id) == (
        A.ACCESS_DENIED, "denied", clinician_a.pk, org_b.pk)
    assert (event.target_type, event.target_id, event.details) == ("case", str(other.public_id),
                                                                   {"wanted": "upload_study"})
    nothing = c.post(UPLOADS, HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_meta_case(uuid.uuid4()), **TUS)
    garbled = c.post(UPLOADS, HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_meta_case("not-an-id"), **TUS)
    assert len(_events(before)) == 1  # no case to record it in
    # the same answer whether the case exists elsewhere or not at all: nothing revealed
    assert (probe.status_code, probe.content) == (nothing.status_code, nothing.content) == (
        garbled.status_code, garbled.content) == (400, b"unknown case")
    assert not Upload.objects.exists()


@pytest.mark.parametrize("method", ["head", "patch", "delete", "get"])
def test_another_users_or_organizations_upload_is_a_recorded_probe_answered_as_none(
        client_as, org_a, org_b, uploader, method):
    r = client_as(uploader).post(UPLOADS, HTTP_UPLOAD_LENGTH="10", **TUS)
    upload = Upload.objects.get()
    url = r["Location"].split("testserver", 1)[-1]
    missing = reverse("imaging:tus_upload", kwargs={"upload_id": uuid.uuid4()})
    # GET is for the organization's staff (the colleague reads it): the other organization probes it
    prober = member(org_b if method == "get" else org_a, Role.RADIOLOGIST)
    c = client_as(prober)

    def send(target):
        if method == "patch":
            return c.generic("PATCH", target, b"0123456789", content_type="application/offset+octet-stream",
                             HTTP_UPLOAD_OFFSET="0", **TUS)
        return getattr(c, method)(target, **TUS)

    before = _last()
    probe = send(url)
    [event] = _events(before)
    assert (event.action, event.outcome, event.actor_id, event.organization_id) == (
        A.ACCESS_DENIED, "denied", prober.pk, org_a.pk)
    assert (event.target_type, event.target_id) == ("upload", str(upload.public_id))
    assert event.details == {"wanted": "view_org_data" if method == "get" else "upload_study"}
    nothing = send(missing)
    assert len(_events(before)) == 1
    assert (probe.status_code, probe.content) == (nothing.status_code, nothing.content) == (
        404, b"" if method == "head" else b"no such upload")
    upload.refresh_from_db()
    assert (upload.offset, upload.state) == (0, "uploading")


def test_the_uploaders_own_upload_hidden_since_is_not_recorded_as_a_probe(client_as, org_a, uploader):
    """Their membership ended while the upload page polled: 404, as before, and not a probe
    recorded every 1.5 seconds."""
    c = client_as(uploader)
    url = c.post(UPLOADS, HTTP_UPLOAD_LENGTH="10", **TUS)["Location"].split("testserver", 1)[-1]
    Membership.objects.filter(user=uploader, organization=org_a).update(is_active=False)
    before = _last()
    assert c.get(url).status_code == 404
    assert c.head(url, **TUS).status_code == 404
    assert _events(before, A.ACCESS_DENIED) == []
