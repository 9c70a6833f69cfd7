from __future__ import annotations

import hashlib
import shutil

import pytest
from pydicom import dcmread

from apps.audit.models import AuditEvent
from apps.imaging.blobs import open_blob
from apps.imaging.models import Blob, FileOutcome, Instance, JobState, Study, StudyState
from apps.imaging.services import ingest_job_create, ingest_job_run, study_delete
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


def _ingest(org, path, case=None):
    job = ingest_job_create(organization=org, source_path=str(path), case=case, enqueue=False)
    return ingest_job_run(job_id=job.pk)


def test_folder_ingest_indexes_and_stores_every_instance(org_a, small_ct):
    case = CaseFactory(organization=org_a)
    job = _ingest(org_a, small_ct, case)
    assert job.state == JobState.DONE
    assert job.files_ingested == 6
    study = Study.objects.get()
    assert study.state == StudyState.READY and study.case == case
    assert (study.num_series, study.num_instances, study.modalities) == (1, 6, "CT")
    assert study.study_description == "Synthetic CT chest" and study.body_part_examined == "CHEST"
    for path in small_ct.iterdir():
        uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        inst = Instance.objects.get(sop_instance_uid=uid)
        assert (inst.rows, inst.columns, inst.frames) == (64, 64, 1)
        data = path.read_bytes()
        assert inst.sha256 == hashlib.sha256(data).hexdigest()
        assert open_blob(inst.blob).read() == data
    assert AuditEvent.objects.filter(action="imaging.ingest", organization=org_a).exists()
    assert AuditEvent.objects.filter(action="imaging.study_ingested", study_ref=study.public_id).exists()


def test_zip_ingest_matches_folder(org_a, small_ct_zip):
    job = _ingest(org_a, small_ct_zip)
    assert job.files_ingested == 6
    assert {f.path for f in job.files.all()} == {f"CT/IM{i:05d}.dcm" for i in range(6)}


def test_running_a_job_twice_changes_nothing(org_a, small_ct):
    job = _ingest(org_a, small_ct)
    before = (Study.objects.count(), Instance.objects.count(), Blob.objects.count(), job.files.count())
    job.state = JobState.RUNNING
    job.save()
    ingest_job_run(job_id=job.pk)
    assert (Study.objects.count(), Instance.objects.count(), Blob.objects.count(), job.files.count()) == before


def test_study_delete_removes_unshared_blobs_and_is_audited(org_a, admin_a, small_ct):
    _ingest(org_a, small_ct)
    study = Study.objects.get()
    assert study_delete(study=study, by=admin_a) == 6
    assert not Blob.objects.exists()
    assert AuditEvent.objects.filter(action="imaging.study_deleted", actor=admin_a).exists()


def test_dicomdir_is_followed(org_a, tmp_path):
    from pydicom.data import get_testdata_file

    src = get_testdata_file("DICOMDIR", download=False)
    shutil.copytree(src.rsplit("/", 1)[0], tmp_path / "dd", dirs_exist_ok=True)
    job = _ingest(org_a, tmp_path / "dd" / "DICOMDIR")
    assert job.files_ingested > 0
    assert job.files.filter(outcome=FileOutcome.INGESTED).count() == job.files_ingested


@pytest.mark.parametrize("failing", ["one write", "the commit"])
def test_a_batch_that_does_not_commit_leaves_no_blob_file(org_a, small_ct, monkeypatch, failing):
    """The batch's new blob files go with it: no row holds their keys. The retry then stores
    every instance once."""
    from django.core.files.storage import default_storage

    from apps.imaging import blobs, services

    real_write, real_index = blobs.blob_write, services._index
    written: list[str] = []
    fails = sorted(hashlib.sha256(f.read_bytes()).hexdigest() for f in small_ct.iterdir())[3]

    def write(source, sha256):
        if failing == "one write" and sha256 == fails:
            raise OSError("disk full")
        blob = real_write(source, sha256)
        written.append(blob.storage_name)
        return blob

    def index(*args):
        raise RuntimeError("database went away")

    monkeypatch.setattr(blobs, "blob_write", write)
    if failing == "the commit":
        monkeypatch.setattr(services, "_index", index)
    job = ingest_job_create(organization=org_a, source_path=str(small_ct), enqueue=False)
    with pytest.raises(services.StorageUnavailable if failing == "one write" else RuntimeError):
        ingest_job_run(job_id=job.pk)
    assert written and not [name for name in written if default_storage.exists(name)]
    assert not Blob.objects.exists() and not Instance.objects.exists()

    monkeypatch.setattr(blobs, "blob_write", real_write)
    monkeypatch.setattr(services, "_index", real_index)
    assert ingest_job_run(job_id=job.pk).files_ingested == 6
    for inst in Instance.objects.select_related("blob"):
        assert open_blob(inst.blob).read()
