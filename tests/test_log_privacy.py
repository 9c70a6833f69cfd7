"""No patient data in the logs, end to end: a study whose patient name, patient ID, birth date,
accession number, descriptions, upload file name and zip folder and entry names are marker
strings goes through the main flows (tus upload and ingest with skipped entries, a failed ingest,
renditions, viewer, downloads, de-identified export, sharing with notification mails, a patient
invitation, case and audit searches, refused requests) with every logger at DEBUG, and no log
line, traceback or warning, and no e-mail, names any marker.

The records are checked as the console handler writes them (apps.core.logs.Redact applied), and
every logger is lowered to DEBUG and made to propagate, except the ones the settings' LOGGING
holds at a higher level on purpose (those hold in production whatever DJANGO_LOG_LEVEL says)."""

from __future__ import annotations

import base64
import copy
import io
import logging
import secrets
import smtplib
import uuid
import warnings
import zipfile
from datetime import date

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client
from django.urls import reverse
from pydicom.uid import generate_uid

from apps.core.logs import Redact
from apps.deid.models import DeidExport
from apps.imaging.models import FileOutcome, IngestFileResult, IngestJob, JobState, Study
from apps.imaging.services import ingest_job_create
from apps.imaging.tasks import ingest_job_run_task
from apps.organizations.models import Role
from apps.renditions.models import RenditionFile
from apps.sharing.models import Grant, OriginalRequest
from bench.ingest.synthetic import ct_slice
from tests.factories import CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
BIRTH = date(1931, 2, 3)


def _markers() -> dict[str, str]:
    """One marker per kind of patient data, unique to this run (so nothing else can hold it)."""
    run = secrets.token_hex(3).upper()
    kinds = ["family", "given", "patient_id", "accession", "study_description", "series_description",
             "case_title", "note", "request_reason", "decision_note", "folder", "entry", "broken_entry",
             "escape_entry", "nested_entry", "damaged_entry", "upload_name", "single_upload_name",
             "failed_folder", "patient_email"]
    return {kind: f"Qz{kind.replace('_', '').title()}{run}" for kind in kinds}


def _slice(m: dict[str, str], *, study_uid: str, series_uid: str, index: int) -> bytes:
    ds = ct_slice(study_uid=study_uid, series_uid=series_uid, index=index, rows=64, columns=64,
                  patient_name=f"{m['family']}^{m['given']}", patient_id=m["patient_id"])
    ds.AccessionNumber = m["accession"]
    ds.StudyDescription = m["study_description"]
    ds.SeriesDescription = m["series_description"]
    ds.PatientBirthDate = BIRTH.strftime("%Y%m%d")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _study_zip(m: dict[str, str]) -> bytes:
    """Four slices under a folder named after the patient, and entries the ingest skips: a file
    that is not DICOM, a path escaping the archive, a nested zip and an entry whose CRC fails."""
    study_uid, series_uid = generate_uid(), generate_uid()
    damaged = b"DAMAGED-ENTRY-" * 20
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(4):
            zf.writestr(f"{m['folder']}/{m['entry']}_{i}.dcm", _slice(m, study_uid=study_uid, series_uid=series_uid,
                                                                     index=i))
        zf.writestr(f"{m['folder']}/{m['broken_entry']}.dcm", b"not dicom at all " * 20)
        zf.writestr(f"../{m['escape_entry']}.dcm", b"x" * 200)
        zf.writestr(f"{m['folder']}/{m['nested_entry']}.zip", b"PK\x03\x04" + b"\0" * 200)
        zf.writestr(f"{m['folder']}/{m['damaged_entry']}.dcm", damaged, compress_type=zipfile.ZIP_STORED)
    data = out.getvalue()
    assert data.count(damaged) == 1
    return data.replace(damaged, b"damaged-entry-" * 20)  # same length, CRC no longer matches


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _tus_upload(client: Client, data: bytes, **metadata: str) -> None:
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
    response = client.generic("POST", "/api/v1/uploads/", data, content_type="application/offset+octet-stream",
                              HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_UPLOAD_METADATA=meta, **TUS)
    assert response.status_code == 201 and response["Upload-Offset"] == str(len(data)), response.content


@pytest.fixture
def every_logger_at_debug():
    """Every logger at DEBUG, enabled and propagating to the root (where caplog listens), but
    those the settings hold higher on purpose (axes logs e-mail addresses at INFO); restored after
    (setLevel clears the loggers' cached levels both ways)."""
    kept = set(settings.LOGGING.get("loggers", {}))
    manager = logging.getLogger().manager
    saved = []
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and not any(name == k or name.startswith(k + ".") for k in kept):
            saved.append((logger, logger.level, logger.propagate, logger.disabled))
            logger.setLevel(logging.DEBUG)
            logger.propagate, logger.disabled = True, False
    yield
    for logger, level, propagate, disabled in saved:
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


def _as_written(record: logging.LogRecord) -> str:
    """The record as the console handler writes it: redacted (apps.core.logs.Redact), then
    formatted with its traceback."""
    record = copy.copy(record)
    Redact().filter(record)
    text = logging.Formatter("%(name)s %(message)s").format(record)
    return text + "\n" + (record.exc_text or "")


def _leaks(texts: list[tuple[str, str]], markers: dict[str, str]) -> list[str]:
    needles = {**markers, "birth_date": BIRTH.strftime("%Y%m%d"), "birth_date_iso": BIRTH.isoformat(),
               "birth_date_dmy": BIRTH.strftime("%d/%m/%Y"), "birth_date_mdy": BIRTH.strftime("%m/%d/%Y")}
    return [f"{where}: {kind} in ...{text[max(0, text.find(n) - 120):text.find(n) + 60]}..."
            for where, text in texts for kind, n in needles.items() if n in text]


def test_main_flows_log_and_mail_no_patient_data(org_a, caplog, every_logger_at_debug, tmp_path,
                                                 django_capture_on_commit_callbacks):
    m = _markers()
    org_a.mfa_required_roles = []
    org_a.save()
    radiologist = member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")
    owner = member(org_a, Role.CLINICIAN, email="owner@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    admin = member(org_a, Role.ORG_ADMIN, email="admin@alpha.example")
    patient = PatientFactory(organization=org_a, name=f"{m['given']} {m['family']}", mrn=m["patient_id"],
                             birth_date=BIRTH)
    case = CaseFactory(organization=org_a, patient=patient, title=m["case_title"], created_by=owner,
                       responsible_clinician=owner)
    logging.captureWarnings(True)  # a warning goes to stderr, which is a log too: here it is a record
    caplog.set_level(logging.DEBUG)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            _drive(m, org_a, case, radiologist=radiologist, owner=owner, consultant=consultant, admin=admin,
                   tmp_path=tmp_path, on_commit=django_capture_on_commit_callbacks)
    finally:
        logging.captureWarnings(False)

    assert caplog.records, "nothing was logged: the check would prove nothing"
    logged = [(f"log {r.name}", _as_written(r)) for r in caplog.records]
    mailed = [(f"mail {msg.subject!r}", "\n".join([msg.subject, msg.body, *(str(c) for c, _ in msg.alternatives)]))
              for msg in mail.outbox]
    assert len(mailed) >= 4, [msg.subject for msg in mail.outbox]  # invitation, request, decision mails
    leaks = _leaks(logged, m) + _leaks(mailed, {k: v for k, v in m.items() if k != "patient_email"})
    assert not leaks, "\n".join(leaks)
    # the patient's own address is where the invitation goes, and only there
    assert [msg.to for msg in mail.outbox if m["patient_email"].lower() in "\n".join(msg.to).lower()] \
        == [[f"{m['patient_email']}@home.example".lower()]]


def _drive(m, org, case, *, radiologist, owner, consultant, admin, tmp_path, on_commit) -> None:
    rad = _client(radiologist)
    # --- upload (tus) and ingest: four slices and four entries skipped, renditions after it
    with on_commit(execute=True):
        _tus_upload(rad, _study_zip(m), filename=f"{m['upload_name']}.zip", case=str(case.public_id))
    job = IngestJob.objects.get(upload__filename=f"{m['upload_name']}.zip")
    assert (job.state, job.files_ingested, job.files_skipped) == (JobState.DONE_WITH_WARNINGS, 4, 4)
    assert IngestFileResult.objects.filter(job=job, outcome=FileOutcome.SKIPPED).exclude(reason="").count() == 4
    study = Study.objects.get(case=case)
    assert study.patient_name == f"{m['family']}^{m['given']}" and study.accession_number == m["accession"]
    assert RenditionFile.objects.filter(study=study).exists()
    # a single file that is not DICOM, named after the patient
    with on_commit(execute=True):
        _tus_upload(rad, b"\0" * 128 + b"DICM" + b"garbage" * 40, filename=f"{m['single_upload_name']}.dcm")
    assert IngestJob.objects.get(upload__filename=f"{m['single_upload_name']}.dcm").files_skipped == 1
    # an ingest that fails: its server-side folder (named after the patient) is gone when it runs.
    # In a worker Celery logs the error with its traceback; run eagerly (the embedded default) it
    # propagates into the request that queued it, whose 500 Django logs with the traceback.
    failed = ingest_job_create(organization=org, source_path=str(tmp_path / m["failed_folder"]),
                               created_by=radiologist, enqueue=False)
    assert ingest_job_run_task.apply(args=(failed.pk,), throw=False).failed()
    assert IngestJob.objects.get(pk=failed.pk).state == JobState.FAILED
    # a failed job's message delivered again leaves it alone: a second job meets the same error
    again = ingest_job_create(organization=org, source_path=str(tmp_path / m["failed_folder"]),
                              created_by=radiologist, enqueue=False)
    with pytest.raises(Exception) as raised:  # whatever it is, its text is checked
        ingest_job_run_task.apply(args=(again.pk,), throw=True)
    logging.getLogger("django.request").error("Internal Server Error: %s", "/api/v1/uploads/x/",
                                              exc_info=(raised.type, raised.value, raised.tb))

    # --- the study's pages, viewer frames and downloads
    assert rad.get(reverse("imaging:study_detail", kwargs={"study_id": study.public_id})).status_code == 200
    assert rad.get(reverse("viewer:viewer", kwargs={"study_id": study.public_id})).status_code == 200
    instance = study.instances.order_by("instance_number").first()
    frame = rad.get(reverse("viewer:frame", kwargs={"instance_id": instance.public_id}))
    assert frame.status_code == 200, frame.content[:200]
    assert rad.get(reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + "?quality=x").status_code \
        == 400
    for kind in ("preview", "lossless", "original"):
        response = rad.get(reverse("renditions:study_download", kwargs={"study_id": study.public_id}),
                           {"rendition": kind})
        assert response.status_code == 200, (kind, response.status_code)
        b"".join(response.streaming_content) if response.streaming else response.content

    # --- a de-identified export
    with on_commit(execute=True):
        response = rad.post(reverse("deid:study_exports", kwargs={"study_id": study.public_id}),
                            {"pseudonym": "PSEUDO-1"})
    assert response.status_code == 302, response.content[:300]
    assert DeidExport.objects.get(study=study).state == "ready"
    # a pseudonym that names the patient is refused (the message quotes nothing)
    response = rad.post(reverse("deid:study_exports", kwargs={"study_id": study.public_id}),
                        {"pseudonym": m["family"]})
    assert response.status_code == 400

    # --- notes, sharing, the original-DICOM request and its notification mails
    response = _client(owner).post(reverse("cases:note_add", kwargs={"case_id": case.public_id}),
                                   {"kind": "note", "body": f"Nodule grew; {m['note']} to follow up."})
    assert response.status_code == 302
    response = _client(owner).post("/api/v1/grants/", {
        "case": str(case.public_id), "use_case": "second_opinion", "recipient_kind": "user",
        "recipient_email": consultant.email}, content_type="application/json")
    assert response.status_code == 201, response.content
    grant_id = response.json()["id"]
    Grant.objects.filter(public_id=grant_id).update(permissions=["view", "download_preview"], renditions=["preview"])
    recipient = _client(consultant)
    assert recipient.get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id})).status_code == 200
    form_url = reverse("sharing:original_request_create", kwargs={"grant_id": grant_id})
    assert recipient.post(form_url, {"reason": f"Measure the nodule of {m['request_reason']}."}).status_code == 302
    req = OriginalRequest.objects.get(grant__public_id=grant_id)
    decide_url = reverse("sharing:original_request_decide", kwargs={"originalrequest_id": req.public_id})
    assert rad.post(decide_url, {"decision": "approve", "hours": 12,
                                 "note": f"Approved for {m['decision_note']}."}).status_code == 302
    # the patient is invited to the portal
    response = _client(owner).post(reverse("accounts:patient_invite", kwargs={"case_id": case.public_id}),
                                   {"email": f"{m['patient_email']}@home.example", "language": "en"})
    assert response.status_code == 302, response.content[:300]

    # --- searches: cases by name and record number, the audit trail by patient and case
    for q in (m["family"], m["patient_id"]):
        response = _client(owner).get(reverse("cases:case_list"), {"q": q})
        assert response.status_code == 200 and m["case_title"].encode() in response.content
    audit = _client(admin)
    assert audit.get(reverse("audit:event_list"), {"patient": m["patient_id"], "case": m["case_title"]}) \
        .status_code == 200
    assert audit.get(reverse("audit:event_list"), {"patient": m["family"], "date_from": "2026-02-02",
                                                   "date_to": "2026-01-01"}).status_code == 400
    response = audit.post(reverse("audit:export_csv"), {"patient": m["family"]})
    assert response.status_code == 200
    b"".join(response.streaming_content) if response.streaming else response.content
    # refused requests (logged by django.request with their path) with patient data in the query
    missing = reverse("cases:case_detail", kwargs={"case_id": uuid.uuid4()})
    assert _client(owner).get(missing, {"q": m["family"]}).status_code == 404
    assert _client(consultant).get(reverse("cases:case_list"), {"q": m["patient_id"]}).status_code in (200, 403)
    assert rad.get(reverse("audit:event_list"), {"patient": m["family"]}).status_code == 403


class RefusingBackend(BaseEmailBackend):
    """A mail server that refuses every recipient, as smtplib reports it (the addresses in the
    error's message)."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPRecipientsRefused({a: (550, b"5.1.1 <" + a.encode() + b">: user unknown")
                                             for msg in email_messages for a in msg.recipients()})


def test_a_patient_address_the_mail_server_refuses_is_not_logged(org_a, caplog, settings):
    """The invitation's send fails inside the request (the sender is told, the invitation
    withdrawn); the log says so by the error's type, whose message names the patient's address."""
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    address = f"qz{secrets.token_hex(4)}.patient@home.example"
    owner = member(org_a, Role.CLINICIAN, email="owner@alpha.example")
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner,
                       patient=PatientFactory(organization=org_a, birth_date=BIRTH))
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    caplog.set_level(logging.DEBUG)
    response = client.post(reverse("accounts:patient_invite", kwargs={"case_id": case.public_id}),
                           {"email": address, "language": "en"})
    assert response.status_code == 400
    written = [_as_written(r) for r in caplog.records]
    assert any("SMTPRecipientsRefused" in text for text in written), written  # the error is still told
    assert not [text for text in written if address in text or address.split("@")[0] in text]
