"""One StudyInstanceUID is one patient's: a file whose patient ID is not that of the study stored
under its StudyInstanceUID (by an earlier upload, or started by an earlier file of the same one) is
refused with a reason on its report line that names no patient, its bytes are not kept, the rest
of the upload is ingested and the job ends with warnings."""

from __future__ import annotations

import hashlib
import io
import logging

import pytest
from django.core.files.storage import default_storage
from pydicom import dcmread
from pydicom.uid import generate_uid

from apps.audit.models import AuditEvent
from apps.imaging import follow, services, uploads
from apps.imaging.models import Blob, FileOutcome, Instance, JobState, PreparedEntry, Study
from apps.imaging.services import PATIENT_DIFFERS, ingest_job_create, ingest_job_run
from apps.organizations.models import Role
from bench.ingest.synthetic import ct_slice
from tests.factories import CaseFactory, member
from tests.imaging.zips import zip_bytes

pytestmark = pytest.mark.django_db

PATIENT = "SYN-0001"
OTHER = "SYN-OTHER-77"  # the other patient's ID: never in a reason, a log line or an audit record


def _slice(study_uid: str, series_uid: str, index: int, patient_id: str = PATIENT, sop_uid: str | None = None,
           issuer: str | None = None) -> bytes:
    ds = ct_slice(study_uid=study_uid, series_uid=series_uid, index=index, patient_id=patient_id, sop_uid=sop_uid,
                  rows=8, columns=8)
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _write(folder, files: dict[str, bytes]):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _ingest(org, path, case=None):
    job = ingest_job_create(organization=org, source_path=str(path), case=case, enqueue=False)
    return ingest_job_run(job_id=job.pk)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _no_phi_anywhere(job, caplog) -> None:
    for line in job.files.all():
        assert OTHER not in line.reason and PATIENT not in line.reason
        assert OTHER not in line.reason_shown and PATIENT not in line.reason_shown
    assert OTHER not in caplog.text and PATIENT not in caplog.text
    for event in AuditEvent.objects.all():
        assert OTHER not in str(event.details) and PATIENT not in str(event.details)


@pytest.mark.parametrize("batch_files", [None, 1])
def test_a_zip_mixing_two_patients_in_one_study_keeps_the_first_patients_files_only(
        org_a, tmp_path, caplog, monkeypatch, batch_files):
    """The first file of the study in the upload decides its patient: the other patient's file,
    second in the zip, is refused (not added to the study), the study's files after it and
    another study of that other patient are ingested. In one batch, or a batch a file."""
    caplog.set_level(logging.INFO)
    if batch_files is not None:
        monkeypatch.setattr(services, "BATCH_FILES", batch_files)
    study, series, elsewhere = generate_uid(), generate_uid(), generate_uid()
    intruder = _slice(study, series, 1, patient_id=OTHER)
    entries = {"a/IM0.dcm": _slice(study, series, 0), "a/IM1.dcm": intruder,
               "a/IM2.dcm": _slice(study, series, 2), "a/IM3.dcm": _slice(study, series, 3),
               "b/IM0.dcm": _slice(elsewhere, generate_uid(), 0, patient_id=OTHER)}
    (tmp_path / "mixed.zip").write_bytes(zip_bytes(entries))

    job = _ingest(org_a, tmp_path / "mixed.zip")

    assert job.state == JobState.DONE_WITH_WARNINGS
    assert (job.files_ingested, job.files_skipped) == (4, 1)
    line = job.files.get(path="a/IM1.dcm")
    assert line.outcome == FileOutcome.SKIPPED and line.reason == PATIENT_DIFFERS and line.study is None
    assert "does not" not in line.reason and "patient ID in this file is not that of the study" in line.reason
    mine = Study.objects.get(study_instance_uid=study)
    assert (mine.version, mine.patient_id, mine.instances.count()) == (1, PATIENT, 3)
    assert not Instance.objects.filter(sha256=_sha(intruder)).exists()
    assert not Blob.objects.filter(sha256=_sha(intruder)).exists(), "the refused file's bytes are not kept"
    assert Study.objects.get(study_instance_uid=elsewhere).patient_id == OTHER
    assert Blob.objects.count() == 4 and all(default_storage.exists(b.storage_name) for b in Blob.objects.all())
    _no_phi_anywhere(job, caplog)


@pytest.mark.parametrize("kind", ["new instance", "changed instance", "into its case"])
def test_a_later_upload_of_another_patient_to_a_stored_study_is_refused(org_a, tmp_path, caplog, kind):
    """A study stored (in a case, or in none): a file of another patient under its UID, a new
    instance or a changed one (which would have made a new version), sent into the study's case or
    into none, adds nothing to any version of it; a file of its own patient sent with it is added."""
    caplog.set_level(logging.INFO)
    study, series = generate_uid(), generate_uid()
    case = CaseFactory(organization=org_a) if kind == "into its case" else None
    first = _ingest(org_a, _write(tmp_path / "first", {f"IM{i}.dcm": _slice(study, series, i) for i in range(3)}),
                    case=case)
    assert first.state == JobState.DONE
    stored = Study.objects.get()
    sop = dcmread(tmp_path / "first" / "IM1.dcm", stop_before_pixels=True).SOPInstanceUID
    intruder = _slice(study, series, 9, patient_id=OTHER, sop_uid=sop if kind == "changed instance" else None)
    more = _slice(study, series, 3)

    job = _ingest(org_a, _write(tmp_path / "later", {"IM9.dcm": intruder, "IM3.dcm": more}), case=case)

    assert job.state == JobState.DONE_WITH_WARNINGS
    assert (job.files_ingested, job.files_skipped) == (1, 1)
    line = job.files.get(path="IM9.dcm")
    assert (line.outcome, line.reason) == (FileOutcome.SKIPPED, PATIENT_DIFFERS)
    assert list(Study.objects.values_list("pk", flat=True)) == [stored.pk], "no new version"
    assert stored.instances.count() == 4 and not Instance.objects.filter(sha256=_sha(intruder)).exists()
    assert not Blob.objects.filter(sha256=_sha(intruder)).exists()
    _no_phi_anywhere(job, caplog)


def test_a_file_of_another_patient_is_refused_by_the_latest_version_too(org_a, tmp_path):
    """A study with a second version (a changed instance): a file of another patient adds to
    neither version, a file of its own patient goes into the latest."""
    study, series = generate_uid(), generate_uid()
    _ingest(org_a, _write(tmp_path / "v1", {f"IM{i}.dcm": _slice(study, series, i) for i in range(2)}))
    sop = dcmread(tmp_path / "v1" / "IM0.dcm", stop_before_pixels=True).SOPInstanceUID
    changed = _ingest(org_a, _write(tmp_path / "v2", {"IM0.dcm": _slice(study, series, 5, sop_uid=sop)}))
    assert changed.files.get().outcome == FileOutcome.NEW_VERSION

    job = _ingest(org_a, _write(tmp_path / "v3", {"IM7.dcm": _slice(study, series, 7, patient_id=OTHER),
                                                 "IM8.dcm": _slice(study, series, 8)}))

    assert (job.files_ingested, job.files_skipped) == (1, 1)
    assert job.files.get(path="IM7.dcm").reason == PATIENT_DIFFERS
    assert sorted(Study.objects.values_list("version", "num_instances")) == [(1, 2), (2, 3)]


@pytest.mark.parametrize(("stored", "sent", "refused"), [
    ("", "SYN-0001", True),        # a study with no patient ID takes no file with one
    ("SYN-0001", "", True),        # ... nor the reverse: a file with none is not shown to be its patient's
    ("", "", False),               # no patient ID on either side: nothing tells them apart
    (" SYN-0001  ", "SYN-0001", False),  # blanks around it are not part of it, as the index reads it
])
def test_an_empty_patient_id_is_a_value_like_any_other(org_a, tmp_path, stored, sent, refused):
    study, series = generate_uid(), generate_uid()
    _ingest(org_a, _write(tmp_path / "first", {"IM0.dcm": _slice(study, series, 0, patient_id=stored.strip())}))
    Study.objects.update(patient_id=stored)

    job = _ingest(org_a, _write(tmp_path / "later", {"IM1.dcm": _slice(study, series, 1, patient_id=sent)}))

    line = job.files.get()
    assert (line.outcome == FileOutcome.SKIPPED) is refused
    assert Study.objects.get().instances.count() == (1 if refused else 2)
    assert job.state == (JobState.DONE_WITH_WARNINGS if refused else JobState.DONE)


def test_a_refused_file_the_follower_prepared_leaves_no_blob(org_a, tmp_path):
    """An entry prepared while the upload arrived (its blob stored then) and refused by the job:
    its blob goes with the upload's prepared entries, as any the job did not take."""
    uploader = member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")
    study, series = generate_uid(), generate_uid()
    intruder = _slice(study, series, 1, patient_id=OTHER)
    data = zip_bytes({"IM0.dcm": _slice(study, series, 0), "IM1.dcm": intruder, "IM2.dcm": _slice(study, series, 2)})
    upload = uploads.upload_create(organization=org_a, user=uploader, length=len(data), filename="study.zip")
    writer = uploads.upload_writer(upload)
    writer.write(data)
    writer.close()
    from apps.imaging.models import Upload

    Upload.objects.filter(pk=upload.pk).update(offset=len(data))
    upload.refresh_from_db()
    assert follow.upload_follow(upload_id=upload.pk) == 3
    assert Blob.objects.filter(sha256=_sha(intruder)).exists()

    job = ingest_job_run(job_id=uploads.upload_complete(upload=upload).pk)

    assert (job.state, job.files_ingested, job.files_skipped, job.files_prepared) == (
        JobState.DONE_WITH_WARNINGS, 2, 1, 3)
    assert job.files.get(path="IM1.dcm").reason == PATIENT_DIFFERS
    assert not PreparedEntry.objects.exists()
    assert not Blob.objects.filter(sha256=_sha(intruder)).exists()


def test_the_same_patient_id_from_another_issuer_is_another_patient(org_a, tmp_path, caplog):
    """A patient ID is unique within its issuer only: a file with the study's patient ID but
    another Issuer of Patient ID is refused like another patient's. A file naming no issuer is
    not refused for that alone; the study keeps the first issuer named, also when its first file
    named none, and a later upload is held to it."""
    caplog.set_level(logging.INFO)
    study, series = generate_uid(), generate_uid()
    other_issuer = _slice(study, series, 2, issuer="CLINIC-B")
    job = _ingest(org_a, _write(tmp_path / "first", {"IM0.dcm": _slice(study, series, 0),
                                                    "IM1.dcm": _slice(study, series, 1, issuer="HOSP-A"),
                                                    "IM2.dcm": other_issuer,
                                                    "IM3.dcm": _slice(study, series, 3)}))

    assert job.state == JobState.DONE_WITH_WARNINGS
    assert (job.files_ingested, job.files_skipped) == (3, 1)
    assert job.files.get(path="IM2.dcm").reason == PATIENT_DIFFERS
    stored = Study.objects.get()
    assert (stored.patient_id, stored.issuer_of_patient_id, stored.instances.count()) == (PATIENT, "HOSP-A", 3)
    assert not Blob.objects.filter(sha256=_sha(other_issuer)).exists()

    later = _ingest(org_a, _write(tmp_path / "later", {"IM7.dcm": _slice(study, series, 7, issuer="CLINIC-B"),
                                                      "IM8.dcm": _slice(study, series, 8, issuer="HOSP-A")}))
    assert (later.files_ingested, later.files_skipped) == (1, 1)
    assert later.files.get(path="IM7.dcm").reason == PATIENT_DIFFERS
    _no_phi_anywhere(job, caplog)
