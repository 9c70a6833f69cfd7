"""The tus server's protocol edge cases, as a security review walks them: every refusal with the
status tus prescribes and a text saying why, nothing created or written by a refused request,
another user's upload answered as no upload, and the policy asked again before each append."""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.cases.models import Case
from apps.imaging.models import IngestJob, Upload, UploadState
from apps.organizations.models import Membership, Role
from tests.factories import CaseFactory, audit_write_fails, member

pytestmark = pytest.mark.django_db

ROOT = "/api/v1/uploads/"
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
OCTET = "application/offset+octet-stream"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _sha1(raw: bytes) -> str:
    return "sha1 " + _b64(hashlib.sha1(raw).digest())


@pytest.fixture
def uploader(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


@pytest.fixture
def client(uploader):
    c = Client()
    c.force_login(uploader)
    return c


def _create(client, length: int, **headers) -> str:
    response = client.post(ROOT, HTTP_UPLOAD_LENGTH=str(length), **TUS, **headers)
    assert response.status_code == 201, response.content
    return response["Location"].split("testserver", 1)[-1]


def _patch(client, url, offset, data, **headers):
    return client.generic("PATCH", url, data, content_type=OCTET, HTTP_UPLOAD_OFFSET=str(offset), **TUS, **headers)


# --- the protocol's refusals ---------------------------------------------------------------


def test_wrong_or_missing_tus_version_is_412_naming_the_version(client):
    url = _create(client, 4)
    for version in ("0.2.2", "1.0", "", None):
        extra = {} if version is None else {"HTTP_TUS_RESUMABLE": version}
        created = client.post(ROOT, HTTP_UPLOAD_LENGTH="4", **extra)
        appended = client.generic("PATCH", url, b"ab", content_type=OCTET, HTTP_UPLOAD_OFFSET="0", **extra)
        for response in (created, appended):
            assert response.status_code == 412 and response["Tus-Version"] == "1.0.0"
            assert b"Tus-Resumable: 1.0.0" in response.content
    assert Upload.objects.count() == 1 and Upload.objects.get().offset == 0


@pytest.mark.parametrize("value", ["abc", "-1", "0x10", "1e3"])
def test_a_length_or_offset_that_is_not_a_number_says_so(client, value):
    """It was answered "Upload-Offset is required" (or "Upload-Length is required") as if missing."""
    created = client.post(ROOT, HTTP_UPLOAD_LENGTH=value, **TUS)
    assert created.status_code == 400
    assert created.content == b"Upload-Length must be a number of bytes, in digits 0-9"
    url = _create(client, 4)
    appended = _patch(client, url, value, b"ab")
    assert appended.status_code == 400
    assert appended.content == b"Upload-Offset must be a number of bytes, in digits 0-9"
    missing = client.generic("PATCH", url, b"ab", content_type=OCTET, **TUS)
    assert missing.status_code == 400 and missing.content == b"Upload-Offset is required"
    assert Upload.objects.get().offset == 0


def test_an_offset_that_is_not_the_uploads_is_409_with_the_right_one(client):
    url = _create(client, 10)
    assert _patch(client, url, 0, b"abc")["Upload-Offset"] == "3"
    for offset in (0, 2, 4, 10):
        response = _patch(client, url, offset, b"de")
        assert response.status_code == 409 and response["Upload-Offset"] == "3"
    assert Upload.objects.get().offset == 3


@pytest.mark.parametrize("metadata", ["filename ***", "filename YQ", "filename //79", "case bm90LWEtdXVpZA=="])
def test_bad_upload_metadata_is_400_and_nothing_is_created(client, metadata):
    response = client.post(ROOT, HTTP_UPLOAD_LENGTH="4", HTTP_UPLOAD_METADATA=metadata, **TUS)
    assert response.status_code == 400 and response.content in (b"malformed Upload-Metadata", b"unknown case")
    assert not Upload.objects.exists()


def test_a_length_over_the_organizations_limit_is_413_and_nothing_is_created(client, org_a):
    org_a.upload_max_bytes = 1000
    org_a.save(update_fields=["upload_max_bytes"])
    response = client.post(ROOT, HTTP_UPLOAD_LENGTH="1001", **TUS)
    assert response.status_code == 413 and response["Lightbox-Refusal"] == "too_large"
    assert not Upload.objects.exists()
    assert client.post(ROOT, HTTP_UPLOAD_LENGTH="1000", **TUS).status_code == 201


@pytest.mark.parametrize(
    ("checksum", "status"),
    [
        ("crc32 AAAAAA==", 400),
        ("SHA1", 400),
        ("sha1 ", 400),
        ("sha1 !!!!", 400),
        ("sha1 " + _b64(b"short"), 400),
        ("md5 " + _b64(hashlib.sha1(b"ab").digest()), 400),
        ("sha1 " + _b64(hashlib.sha1(b"other").digest()), 460),
    ],
)
def test_a_bad_checksum_on_an_append_is_refused_and_nothing_kept(client, checksum, status):
    """An algorithm the server does not speak, or a digest that is not one (empty, not base64, not
    the algorithm's size), is a 400; a digest of other bytes a 460. An empty digest was a 460."""
    url = _create(client, 4)
    response = _patch(client, url, 0, b"ab", HTTP_UPLOAD_CHECKSUM=checksum)
    assert response.status_code == status and response["Tus-Resumable"] == "1.0.0"
    assert Upload.objects.get().offset == 0
    assert _patch(client, url, 0, b"ab", HTTP_UPLOAD_CHECKSUM=_sha1(b"ab"))["Upload-Offset"] == "2"
    assert (
        _patch(client, url, 2, b"cd", HTTP_UPLOAD_CHECKSUM="SHA256 " + _b64(hashlib.sha256(b"cd").digest())).status_code
        == 204
    )  # the algorithm's name in any case


@pytest.mark.parametrize("checksum", ["crc32 AAAAAA==", "sha1 !!!!", "sha1 "])
def test_creation_with_a_bad_checksum_is_400_and_creates_nothing(client, checksum):
    """creation-with-upload: it was a 201 (the upload made, the 400 of its first bytes dropped),
    where the schema says 400."""
    response = client.post(
        ROOT, b"ab", content_type=OCTET, HTTP_UPLOAD_LENGTH="4", HTTP_UPLOAD_CHECKSUM=checksum, **TUS
    )
    assert response.status_code == 400, response.content
    assert not Upload.objects.exists()
    assert not AuditEvent.objects.filter(action="imaging.upload_created").exists()
    good = client.post(
        ROOT, b"ab", content_type=OCTET, HTTP_UPLOAD_LENGTH="4", HTTP_UPLOAD_CHECKSUM=_sha1(b"ab"), **TUS
    )
    assert good.status_code == 201 and good["Upload-Offset"] == "2"


def test_creation_whose_first_bytes_fail_their_checksum_leaves_no_upload_behind(client):
    """The 460 names no Location, so the upload it made could never be resumed: it stayed, with
    its staging file, until it expired. It is abandoned at once, both steps recorded."""
    from apps.imaging import staging

    response = client.post(
        ROOT, b"ab", content_type=OCTET, HTTP_UPLOAD_LENGTH="4", HTTP_UPLOAD_CHECKSUM=_sha1(b"other"), **TUS
    )
    assert response.status_code == 460 and "Location" not in response
    upload = Upload.objects.get()
    assert upload.state == UploadState.TERMINATED
    assert not staging.staging_path(upload.staging_name).exists()
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions[-2:] == ["imaging.upload_created", "imaging.upload_deleted"]


@pytest.mark.parametrize("refusal", ["over_length", "staging_unwritable"])
def test_creation_whose_first_bytes_are_refused_says_so_and_leaves_no_upload_behind(client, monkeypatch, refusal):
    """creation-with-upload whose body is refused (more bytes than Upload-Length; a staging
    folder that cannot be written): it was a 201 with Upload-Offset 0 (the refusal dropped, the
    upload left at offset 0 until it expired), so the client took the refused bytes for accepted.
    The refusal is answered, and the upload abandoned, recorded."""
    from apps.imaging import staging, uploads

    if refusal == "staging_unwritable":
        def unwritable(*args, **kwargs):
            raise PermissionError("read-only staging")
        monkeypatch.setattr(uploads, "upload_writer", unwritable)
    response = client.post(ROOT, b"x" * (20 if refusal == "over_length" else 4), content_type=OCTET,
                           HTTP_UPLOAD_LENGTH="10", **TUS)
    assert "Location" not in response
    if refusal == "over_length":
        assert response.status_code == 413 and response["Lightbox-Refusal"] == "over_length"
    else:
        assert response.status_code == 503 and response["Retry-After"] == "60"
    upload = Upload.objects.get()
    assert (upload.state, upload.offset) == (UploadState.TERMINATED, 0)
    assert not staging.staging_path(upload.staging_name).exists()
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions[-2:] == ["imaging.upload_created", "imaging.upload_deleted"]


def test_after_termination_an_upload_is_404_and_after_expiry_410(client):
    ended, expired = _create(client, 4), _create(client, 4)
    assert client.delete(ended, **TUS).status_code == 204
    Upload.objects.filter(public_id=expired.split("/")[-2]).update(expires_at="2000-01-01T00:00:00Z")
    for method in ("head", "delete"):
        assert getattr(client, method)(ended, **TUS).status_code == 404
        assert getattr(client, method)(expired, **TUS).status_code == 410
    assert _patch(client, ended, 0, b"ab").status_code == 404
    assert _patch(client, expired, 0, b"ab").status_code == 410
    assert Upload.objects.get(public_id=expired.split("/")[-2]).offset == 0


def test_a_finished_upload_cannot_be_terminated_under_its_ingest(client, django_capture_on_commit_callbacks):
    """DELETE after the last byte marked the upload terminated and deleted the staging file its
    queued ingest job was about to read; it is a 409 and the upload is left to the ingest."""
    url = _create(client, 4)
    with django_capture_on_commit_callbacks(execute=False):
        assert _patch(client, url, 0, b"abcd").status_code == 204
    upload = Upload.objects.get()
    assert upload.state == UploadState.COMPLETE and IngestJob.objects.filter(upload=upload).exists()
    response = client.delete(url, **TUS)
    assert response.status_code == 409 and b"finished" in response.content
    upload.refresh_from_db()
    assert upload.state == UploadState.COMPLETE
    from apps.imaging import staging

    assert staging.staging_path(upload.staging_name).exists()
    assert not AuditEvent.objects.filter(action="imaging.upload_deleted").exists()


# --- whose upload it is -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["colleague", "other_org", "signed_out"])
def test_another_users_upload_is_no_upload(client, org_a, org_b, client_as, who):
    url = _create(client, 4)
    other = {
        "colleague": lambda: member(org_a, Role.RADIOLOGIST),
        "other_org": lambda: member(org_b, Role.ORG_ADMIN),
        "signed_out": lambda: None,
    }[who]()
    them = client_as(other)
    expected = 403 if who == "signed_out" else 404
    for response in (them.head(url, **TUS), _patch(them, url, 0, b"ab"), them.delete(url, **TUS)):
        assert response.status_code == expected
    mine = client.head(url, **TUS)
    assert mine.status_code == 200 and mine["Upload-Offset"] == "0"
    assert Upload.objects.get().state == UploadState.UPLOADING


def _in_case(client, case) -> str:
    return _create(client, 4, HTTP_UPLOAD_METADATA="case " + _b64(str(case.public_id).encode()))


def test_a_case_closed_during_an_upload_takes_no_more_of_it(client, org_a, uploader):
    """The policy was asked at creation only: the rest of the file went on arriving and its ingest
    filed the studies into the closed case."""
    case = CaseFactory(organization=org_a, created_by=uploader)
    url = _in_case(client, case)
    assert _patch(client, url, 0, b"ab").status_code == 204
    Case.objects.filter(pk=case.pk).update(status="closed")
    response = _patch(client, url, 2, b"cd")
    assert response.status_code == 403 and response["Lightbox-Refusal"] == "case_closed"
    upload = Upload.objects.get()
    assert upload.offset == 2 and upload.state == UploadState.UPLOADING
    assert not IngestJob.objects.exists()
    assert AuditEvent.objects.filter(actor=uploader, action="access.denied", outcome="denied").exists()


def test_an_uploader_whose_role_may_no_longer_upload_writes_no_more(client, org_a, uploader):
    url = _create(client, 4)
    Membership.objects.filter(user=uploader, organization=org_a).update(role=Role.ORG_ADMIN)  # no UPLOAD_STUDY
    response = _patch(client, url, 0, b"abcd")
    assert response.status_code == 403 and b"may not upload" in response.content
    assert Upload.objects.get().offset == 0 and not IngestJob.objects.exists()
    assert client.delete(url, **TUS).status_code == 204  # abandoning it is still theirs to do


def test_a_case_closed_while_the_last_body_arrived_is_not_filed_into(client, org_a, uploader, monkeypatch):
    """The policy was asked before the body only: a case closed while its last bytes arrived (a
    large PATCH takes minutes) still had the upload handed to its ingest, which files the studies
    into the closed case. Asked again before handing it over: refused (recorded), bytes kept,
    and an empty PATCH at its offset hands it over once the case is open again."""
    from apps.imaging import tus

    case = CaseFactory(organization=org_a, created_by=uploader)
    url = _in_case(client, case)
    write_body = tus._write_body

    def close_meanwhile(request, upload):
        refusal = write_body(request, upload)
        Case.objects.filter(pk=case.pk).update(status="closed")
        return refusal

    monkeypatch.setattr(tus, "_write_body", close_meanwhile)
    response = _patch(client, url, 0, b"abcd")
    assert response.status_code == 403 and response["Lightbox-Refusal"] == "case_closed"
    upload = Upload.objects.get()
    assert upload.offset == 4 and upload.state == UploadState.UPLOADING
    assert not IngestJob.objects.exists()
    assert AuditEvent.objects.filter(actor=uploader, action="access.denied", outcome="denied").exists()
    monkeypatch.setattr(tus, "_write_body", write_body)
    Case.objects.filter(pk=case.pk).update(status="open")
    assert _patch(client, url, 4, b"", CONTENT_TYPE=OCTET, CONTENT_LENGTH="0").status_code == 204
    assert Upload.objects.get().state == UploadState.COMPLETE and IngestJob.objects.filter(case=case).exists()


def test_a_membership_ended_while_a_created_upload_arrived_is_not_filed(client, org_a, uploader, monkeypatch):
    """The same for creation-with-upload (the whole file in the POST that creates the upload)."""
    from apps.imaging import tus

    write_body = tus._write_body

    def leave_meanwhile(request, upload):
        refusal = write_body(request, upload)
        Membership.objects.filter(user=uploader, organization=org_a).update(is_active=False)
        return refusal

    monkeypatch.setattr(tus, "_write_body", leave_meanwhile)
    response = client.post(ROOT, b"abcd", content_type=OCTET, HTTP_UPLOAD_LENGTH="4", **TUS)
    assert response.status_code == 403
    assert Upload.objects.get().state == UploadState.UPLOADING and not IngestJob.objects.exists()


def _failing_record(monkeypatch, action: str) -> None:
    """The audit write of ``action`` by the uploads service fails."""
    from apps.imaging import uploads

    audit_write_fails(monkeypatch, uploads, action)


def test_an_upload_is_never_started_without_its_audit_event(org_a, uploader, monkeypatch):
    import os

    from apps.imaging import staging, uploads

    uploads.staging_ready()  # the staging folder made and marked on first use, not by this upload
    folder = staging.staging_dir()
    before = set(os.listdir(folder))
    _failing_record(monkeypatch, "imaging.upload_created")
    with pytest.raises(RuntimeError):
        uploads.upload_create(organization=org_a, user=uploader, length=4)
    assert not Upload.objects.exists()
    assert set(os.listdir(folder)) == before  # its staging file removed with it


def test_an_upload_is_never_cancelled_without_its_audit_event(client, org_a, uploader, monkeypatch):
    url = _create(client, 4)
    assert _patch(client, url, 0, b"ab").status_code == 204
    _failing_record(monkeypatch, "imaging.upload_deleted")
    with pytest.raises(RuntimeError):
        client.delete(url, **TUS)
    upload = Upload.objects.get()
    assert upload.state == UploadState.UPLOADING  # not cancelled: it can be resumed, or cancelled again
    monkeypatch.undo()
    assert _patch(client, url, 2, b"cd").status_code == 204  # what it staged is still there


# --- the upload's status and per-file report ---------------------------------------------------


@pytest.fixture
def reported_upload(org_a, uploader):
    """A finished upload into a case, whose per-file report names a file by a patient's name
    (exports often do: README), and a consultant holding a live whole-case grant on that case."""
    from tests.factories import GrantFactory, IngestJobFactory, UploadFactory

    case = CaseFactory(organization=org_a, created_by=uploader)
    upload = UploadFactory(
        organization=org_a, case=case, created_by=uploader, filename="DOE_JANE_CT.zip", state=UploadState.COMPLETE
    )
    job = IngestJobFactory(organization=org_a, upload=upload, case=case, created_by=uploader)
    job.files.create(path="DOE_JANE/IM0001.dcm", outcome="skipped")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=uploader, permissions=["view"])
    return upload, consultant


def test_the_per_file_report_is_for_staff_not_for_a_grants_recipient(client, client_as, reported_upload, org_a):
    """The status JSON was served on VIEW_CASE, which a whole-case grant gives: a consultant read
    the file names (a patient's name, often) that the study page shows staff only, and outsiders
    never see identifiers. It is the organization's own record (VIEW_ORG_DATA): 404 to the
    recipient, the refusal recorded."""
    upload, consultant = reported_upload
    url = f"{ROOT}{upload.public_id}/"
    refused = client_as(consultant).get(url)
    assert refused.status_code == 404 and b"DOE" not in refused.content
    assert AuditEvent.objects.filter(actor=consultant, action="access.denied", outcome="denied").exists()
    mine = client.get(url)
    assert mine.status_code == 200 and mine.json()["job"]["files"][0]["path"] == "DOE_JANE/IM0001.dcm"
    for role in (Role.CLINICIAN, Role.COORDINATOR, Role.ORG_ADMIN):  # staff of the organization
        assert client_as(member(org_a, role)).get(url).status_code == 200, role


def test_the_status_lists_the_files_that_need_attention_first(client, reported_upload, monkeypatch):
    """Its report is cut at STATUS_FILES lines: a zip's skipped and changed files came after the
    first thousand ingested ones, so the upload page never showed why they were skipped."""
    from apps.imaging import tus

    upload, _consultant = reported_upload
    job = upload.job
    job.files.all().delete()
    for i in range(3):
        job.files.create(path=f"scan/{i}.dcm", outcome="ingested")
    job.files.create(path="scan/changed.dcm", outcome="new_version")
    job.files.create(path="notes.txt", outcome="skipped", reason="Not a DICOM file.")
    monkeypatch.setattr(tus, "STATUS_FILES", 3)
    files = client.get(f"{ROOT}{upload.public_id}/").json()["job"]["files"]
    assert [f["path"] for f in files] == ["notes.txt", "scan/changed.dcm", "scan/0.dcm"]
