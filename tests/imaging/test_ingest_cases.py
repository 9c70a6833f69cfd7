"""An upload never puts a study into a case by the back door: only ``study_attach`` (second
factor, confirmation of the case's audience and of the patient) brings a stored study to a case's
shares. The ingest never changes the case of a study that exists, and adds to a study in a case
only when the upload was sent into that case:

- a file of a study stored in no case (by anyone, possibly another patient's), uploaded into case
  B: goes into that study, which stays in no case; the line says to attach it from its page;
- a file (new or changed) of a study in case A, uploaded with "No case" or into case B: goes into
  a new version in no case, which can be attached to case A only; case A's version is untouched;
- into the study's own case, as before.

Each is told on the file's report line, and the job ends with warnings. Nothing is refused: the
bytes are kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pydicom import dcmread
from pydicom.uid import generate_uid

from apps.imaging import services
from apps.imaging.models import FileOutcome, IngestJob, JobState, Study, StudyState
from apps.imaging.services import StudyAttachRefused, ingest_job_create, ingest_job_run, study_attach
from apps.organizations.models import Role
from apps.sharing import services as sharing
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

IN_NO_CASE = "This study is stored in no case: the file went into it there"
VERSION_IN_NO_CASE = "of this study is in a case, which an upload adds to only when it is sent into that case"
DUPLICATE_ELSEWHERE = "The study it belongs to is not in the case chosen for the upload"


@pytest.fixture
def clinician(org_a):
    return member(org_a, Role.CLINICIAN, email="clinician@alpha.example")


@pytest.fixture
def case_a(org_a, clinician):
    return CaseFactory(organization=org_a, created_by=clinician, responsible_clinician=clinician, title="Case A")


@pytest.fixture
def case_b(org_a, clinician):
    return CaseFactory(organization=org_a, created_by=clinician, responsible_clinician=clinician, title="Case B")


def _consultant_of(case, by, email):
    """An outside consultant holding a share on the whole case."""
    consultant = member(case.organization, Role.EXTERNAL_CONSULTANT, email=email)
    sharing.grant_create(case=case, grantee=consultant, by=by, permissions=["view"],
                         expires_at=timezone.now() + timedelta(hours=2))
    return consultant


def _ingest(org, path, *, case=None, by=None) -> IngestJob:
    job = ingest_job_create(organization=org, source_path=str(path), case=case, created_by=by, enqueue=False)
    return ingest_job_run(job_id=job.pk)


def _one_file(small_ct: Path, folder: Path, *, changed: bool, index: int = 2) -> Path:
    """A file of the small CT's study: a new instance (new SOPInstanceUID), or a changed copy of
    one stored (same SOPInstanceUID, other pixels)."""
    folder.mkdir()
    original = sorted(small_ct.iterdir())[index]
    ds = dcmread(original)
    ds.PixelData = bytes(b ^ 0x01 for b in ds.PixelData)
    if not changed:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(folder / original.name)
    return folder


def _shares(client_as, user, study) -> bool:
    return client_as(user).get(study.get_absolute_url()).status_code == 200


# --- (a) a study in no case, a file of it uploaded into a case --------------------------------

def test_a_new_file_of_a_study_in_no_case_uploaded_into_a_case_leaves_the_study_in_no_case(
        org_a, clinician, case_b, small_ct, tmp_path, client_as):
    """Before: the one file moved the whole study (someone else's upload, possibly another
    patient's) into case B and to its consultant, with no second factor nor confirmation."""
    colleague = member(org_a, Role.RADIOLOGIST)
    _ingest(org_a, small_ct, by=colleague)
    stored = Study.objects.get()
    assert stored.case_id is None
    consultant = _consultant_of(case_b, clinician, "b.consultant@alpha.example")

    job = _ingest(org_a, _one_file(small_ct, tmp_path / "one", changed=False), case=case_b, by=clinician)

    assert list(Study.objects.values_list("pk", "case_id", "version")) == [(stored.pk, None, 1)]
    stored.refresh_from_db()
    assert stored.num_instances == 7 and stored.state == StudyState.READY  # the bytes are kept, in it
    line = job.files.get()
    assert line.outcome == FileOutcome.INGESTED and line.study_id == stored.pk
    assert IN_NO_CASE in line.reason and "Attach to a case" in line.reason
    assert job.state == JobState.DONE_WITH_WARNINGS
    assert not Study.objects.filter(case=case_b).exists()
    assert not _shares(client_as, consultant, stored)


def test_a_changed_file_of_a_study_in_no_case_uploaded_into_a_case_makes_a_version_in_no_case(
        org_a, clinician, case_b, small_ct, tmp_path):
    _ingest(org_a, small_ct)
    v1 = Study.objects.get()
    job = _ingest(org_a, _one_file(small_ct, tmp_path / "changed", changed=True), case=case_b, by=clinician)
    v2 = Study.objects.get(version=2)
    assert (v1.pk, v2.previous_id) == (v2.previous_id, v1.pk)
    assert set(Study.objects.values_list("case_id", flat=True)) == {None}
    line = job.files.get()
    assert line.outcome == FileOutcome.NEW_VERSION and "version 2" in line.reason and IN_NO_CASE in line.reason
    assert job.state == JobState.DONE_WITH_WARNINGS


def test_a_duplicate_of_a_study_in_no_case_uploaded_into_a_case_is_told_and_moves_nothing(
        org_a, clinician, case_b, small_ct):
    _ingest(org_a, small_ct)
    job = _ingest(org_a, small_ct, case=case_b, by=clinician)
    assert job.files_duplicate == 6 and job.state == JobState.DONE_WITH_WARNINGS
    assert all(DUPLICATE_ELSEWHERE in r for r in job.files.values_list("reason", flat=True))
    assert list(Study.objects.values_list("case_id", flat=True)) == [None]


# --- (b) a study in case A, a file of it uploaded with "No case" -------------------------------

def test_a_changed_file_of_a_study_in_a_case_uploaded_with_no_case_makes_a_version_in_no_case(
        org_a, clinician, case_a, small_ct, tmp_path, client_as):
    """Before: version 2 was made inside case A (its consultant saw it), though the uploader
    chose no case and may not upload into case A at all."""
    _ingest(org_a, small_ct, case=case_a, by=clinician)
    v1 = Study.objects.get()
    v1_blobs = dict(v1.instances.values_list("sop_instance_uid", "blob_id"))
    consultant = _consultant_of(case_a, clinician, "a.consultant@alpha.example")
    uploader = member(org_a, Role.RADIOLOGIST)

    job = _ingest(org_a, _one_file(small_ct, tmp_path / "changed", changed=True), by=uploader)

    v2 = Study.objects.get(version=2)
    assert v2.case_id is None and v2.previous_id == v1.pk and v2.num_instances == 6
    v1.refresh_from_db()
    assert v1.case_id == case_a.pk and dict(v1.instances.values_list("sop_instance_uid", "blob_id")) == v1_blobs
    line = job.files.get()
    assert line.outcome == FileOutcome.NEW_VERSION
    assert "Version 1 " + VERSION_IN_NO_CASE in line.reason and "version 2, in no case" in line.reason
    assert job.state == JobState.DONE_WITH_WARNINGS
    assert _shares(client_as, consultant, v1) and not _shares(client_as, consultant, v2)


def test_a_new_file_of_a_study_in_a_case_uploaded_with_no_case_goes_into_a_version_in_no_case(
        org_a, clinician, case_a, small_ct, tmp_path):
    """Before: the file went into case A's study itself."""
    _ingest(org_a, small_ct, case=case_a, by=clinician)
    v1 = Study.objects.get()
    job = _ingest(org_a, _one_file(small_ct, tmp_path / "one", changed=False), by=clinician)
    v1.refresh_from_db()
    assert (v1.case_id, v1.num_instances, v1.instances.count()) == (case_a.pk, 6, 6)
    v2 = Study.objects.get(version=2)
    assert (v2.case_id, v2.previous_id, v2.num_instances) == (None, v1.pk, 7)
    line = job.files.get()
    assert line.outcome == FileOutcome.INGESTED and line.study_id == v2.pk and VERSION_IN_NO_CASE in line.reason
    assert job.state == JobState.DONE_WITH_WARNINGS


# --- (c) a study in case A, files of it uploaded into case B ------------------------------------

def test_files_of_a_study_in_one_case_uploaded_into_another_reach_neither_case(
        org_a, clinician, case_a, case_b, small_ct, tmp_path, client_as):
    """Before: the new file went into case A (whose consultant then saw it) and the changed one
    made version 2 in case A; case A's study never moved to B, nor does it now."""
    _ingest(org_a, small_ct, case=case_a, by=clinician)
    v1 = Study.objects.get()
    in_a = _consultant_of(case_a, clinician, "a.consultant@alpha.example")
    in_b = _consultant_of(case_b, clinician, "b.consultant@alpha.example")
    folder = _one_file(small_ct, tmp_path / "both", changed=False, index=1)
    changed = _one_file(small_ct, tmp_path / "changed", changed=True, index=3)
    next(changed.iterdir()).rename(folder / "changed.dcm")

    job = _ingest(org_a, folder, case=case_b, by=clinician)

    v1.refresh_from_db()
    assert (v1.case_id, v1.instances.count()) == (case_a.pk, 6)
    assert not Study.objects.filter(case=case_b).exists()
    newer = Study.objects.exclude(pk=v1.pk)
    assert set(newer.values_list("case_id", flat=True)) == {None}
    assert job.state == JobState.DONE_WITH_WARNINGS
    reasons = dict(job.files.values_list("outcome", "reason"))
    assert VERSION_IN_NO_CASE in reasons[FileOutcome.INGESTED] or VERSION_IN_NO_CASE in reasons[
        FileOutcome.NEW_VERSION]
    latest = newer.order_by("-version").first()
    assert latest.num_instances == 7  # both files kept, in the newest version
    for study in newer:
        assert not _shares(client_as, in_a, study) and not _shares(client_as, in_b, study)


# --- into the study's own case: as before ----------------------------------------------------

def test_files_uploaded_into_the_studys_own_case_go_into_it(org_a, clinician, case_a, small_ct, tmp_path):
    _ingest(org_a, small_ct, case=case_a, by=clinician)
    v1 = Study.objects.get()
    job = _ingest(org_a, _one_file(small_ct, tmp_path / "one", changed=False), case=case_a, by=clinician)
    assert job.state == JobState.DONE and job.files.get().reason == ""
    assert list(Study.objects.values_list("pk", "case_id")) == [(v1.pk, case_a.pk)]
    assert Study.objects.get().num_instances == 7
    job = _ingest(org_a, _one_file(small_ct, tmp_path / "changed", changed=True), case=case_a, by=clinician)
    assert Study.objects.get(version=2).case_id == case_a.pk
    assert VERSION_IN_NO_CASE not in job.files.get().reason and IN_NO_CASE not in job.files.get().reason


def test_an_upload_into_case_a_adds_to_a_newer_version_in_no_case_there(org_a, clinician, case_a, small_ct,
                                                                          tmp_path):
    """Version 1 in case A, version 2 in no case (made by an upload with no case): a file sent
    into case A goes into version 2, in no case (version 2 may hold another uploader's files),
    told; attaching version 2 brings it to case A."""
    _ingest(org_a, small_ct, case=case_a, by=clinician)
    _ingest(org_a, _one_file(small_ct, tmp_path / "changed", changed=True), by=clinician)
    v2 = Study.objects.get(version=2)
    job = _ingest(org_a, _one_file(small_ct, tmp_path / "one", changed=False), case=case_a, by=clinician)
    assert Study.objects.count() == 2
    v2.refresh_from_db()
    assert (v2.case_id, v2.num_instances) == (None, 7)
    assert IN_NO_CASE in job.files.get().reason and job.state == JobState.DONE_WITH_WARNINGS


# --- the attach's version rule, both ways ------------------------------------------------------

def test_a_newer_version_in_no_case_whose_older_one_is_in_a_case_only_goes_into_that_case(
        org_a, clinician, case_a, case_b, small_ct, tmp_path):
    """The reverse of test_attach's older-version rule: the version the ingest left in no case
    (an upload with no case of a changed file of case A's study) cannot be attached to case B,
    whose shares would reach case A's patient's images; it can be attached to case A."""
    _ingest(org_a, small_ct, case=case_a, by=clinician)
    _ingest(org_a, _one_file(small_ct, tmp_path / "changed", changed=True), by=clinician)
    v2 = Study.objects.get(version=2)
    assert v2.case_id is None
    with pytest.raises(StudyAttachRefused) as refused:
        study_attach(study=v2, case=case_b, by=clinician)
    assert refused.value.code == "versions_elsewhere"
    assert Study.objects.get(pk=v2.pk).case_id is None
    assert [s.pk for s in study_attach(study=v2, case=case_a, by=clinician, patient_confirmed=True)] == [v2.pk]
    assert set(Study.objects.values_list("case_id", flat=True)) == {case_a.pk}


# --- batches and a resumed run: one version in no case, whatever the batches -------------------

@pytest.mark.parametrize("case_name", [None, "case_b"])
def test_a_job_over_several_batches_and_a_crash_makes_one_version_in_no_case(
        org_a, clinician, case_a, case_b, small_ct, tmp_path, monkeypatch, case_name):
    """Files of case A's study uploaded elsewhere, committed two at a time, the run stopped after
    its first batch and resumed: one version in no case holds them all (each batch reads the
    latest version again: the one the first made), nothing twice, case A untouched."""
    _ingest(org_a, small_ct, case=case_a, by=clinician)
    v1 = Study.objects.get()
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(5):
        one = _one_file(small_ct, tmp_path / f"one{i}", changed=False, index=i)
        next(one.iterdir()).rename(folder / f"new{i}.dcm")
    monkeypatch.setattr(services, "BATCH_FILES", 2)
    real, calls = services._store_finish, []

    def crash_after_the_first_batch(run, stored):
        if stored.items and calls:
            raise RuntimeError("worker killed")
        calls.append(1)
        return real(run, stored)

    monkeypatch.setattr(services, "_store_finish", crash_after_the_first_batch)
    case = {"case_b": case_b}.get(case_name)
    job = ingest_job_create(organization=org_a, source_path=str(folder), case=case, created_by=clinician,
                            enqueue=False)
    with pytest.raises(RuntimeError):
        ingest_job_run(job_id=job.pk)
    assert job.files.count() == 2
    monkeypatch.setattr(services, "_store_finish", real)
    job = ingest_job_run(job_id=job.pk)

    assert job.files.count() == 5 and job.state == JobState.DONE_WITH_WARNINGS
    v1.refresh_from_db()
    assert (v1.case_id, v1.instances.count()) == (case_a.pk, 6)
    [v2] = Study.objects.exclude(pk=v1.pk)
    assert (v2.version, v2.case_id, v2.previous_id, v2.num_instances) == (2, None, v1.pk, 11)
    assert set(job.files.values_list("study_id", flat=True)) == {v2.pk}


def test_the_case_keeps_showing_its_version_while_the_newer_one_waits_in_no_case(
        org_a, clinician, case_a, small_ct, tmp_path, client_as):
    """A version in no case made by an upload outside case A supersedes case A's version only
    once attached there: until then case A's page, its whole-case download and its consultants
    keep version 1, and "Studies in no case" offers version 2. (Version 1 had vanished from the
    case: the case lists latest versions only, and version 2 superseded it from no case.)"""
    from apps.cases.selectors import _studies_of
    from apps.imaging.selectors import studies_in_no_case

    _ingest(org_a, small_ct, case=case_a, by=clinician)
    v1 = Study.objects.get()
    consultant = _consultant_of(case_a, clinician, "a.consultant@alpha.example")
    _ingest(org_a, _one_file(small_ct, tmp_path / "one", changed=False), by=member(org_a, Role.RADIOLOGIST))
    v2 = Study.objects.get(version=2)

    assert [s.pk for s in _studies_of(case_a, clinician)] == [v1.pk]
    assert list(Study.objects.filter(case=case_a).latest_versions().ready()) == [v1]  # the case's download
    assert [s.pk for s in _studies_of(case_a, consultant)] == [v1.pk]
    assert str(v1.public_id) in client_as(clinician).get(case_a.get_absolute_url()).content.decode()
    assert [s.pk for s in studies_in_no_case(user=clinician, organization=org_a)] == [v2.pk]

    study_attach(study=v2, case=case_a, by=clinician, patient_confirmed=True)
    assert [s.pk for s in _studies_of(case_a, clinician)] == [v2.pk]
    assert list(studies_in_no_case(user=clinician, organization=org_a)) == []
