"""Must show 3: the same study uploaded twice leaves the stored bytes unchanged; a changed
instance with the same SOPInstanceUID makes a new version and a warning."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from pydicom import dcmread

from apps.imaging.blobs import open_blob
from apps.imaging.models import Blob, FileOutcome, Instance, JobState, Study, StudyState
from apps.imaging.services import ingest_job_create, ingest_job_run

pytestmark = pytest.mark.django_db


def _ingest(org, path):
    job = ingest_job_create(organization=org, source_path=str(path), enqueue=False)
    return ingest_job_run(job_id=job.pk)


def _storage_snapshot() -> dict[str, tuple[int, int, str]]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns,
                                        hashlib.sha256(p.read_bytes()).hexdigest())
            for p in root.rglob("*") if p.is_file()}


def test_same_study_twice_stores_no_extra_bytes(org_a, small_ct, small_ct_zip):
    _ingest(org_a, small_ct)
    before = _storage_snapshot()
    rows = (Study.objects.count(), Instance.objects.count(), Blob.objects.count())
    # again as a folder, and again as a zip of the same files
    for source in (small_ct, small_ct_zip):
        job = _ingest(org_a, source)
        assert job.files_duplicate == 6 and job.files_ingested == 0
        assert set(job.files.values_list("outcome", flat=True)) == {FileOutcome.DUPLICATE}
    assert _storage_snapshot() == before
    assert (Study.objects.count(), Instance.objects.count(), Blob.objects.count()) == rows
    assert Study.objects.get().state == StudyState.READY


def test_changed_instance_makes_a_new_version_and_a_warning(org_a, small_ct, tmp_path):
    _ingest(org_a, small_ct)
    v1 = Study.objects.get()
    v1_blobs = dict(v1.instances.values_list("sop_instance_uid", "blob_id"))
    changed_dir = tmp_path / "changed"
    changed_dir.mkdir()
    original = sorted(small_ct.iterdir())[2]
    ds = dcmread(original)
    ds.PixelData = bytes(b ^ 0x01 for b in ds.PixelData)  # same SOPInstanceUID, different pixels
    ds.save_as(changed_dir / original.name)
    job = _ingest(org_a, changed_dir)
    assert job.state == JobState.DONE_WITH_WARNINGS
    line = job.files.get()
    assert line.outcome == FileOutcome.NEW_VERSION and "version 2" in line.reason
    v2 = Study.objects.get(version=2)
    assert v2.previous == v1 and v2.state == StudyState.READY_WITH_WARNINGS
    assert v2.warnings[0]["sop_instance_uid"] == ds.SOPInstanceUID
    assert v2.num_instances == 6
    # version 1 is untouched: same rows, same blobs, still readable with the original bytes
    v1.refresh_from_db()
    assert dict(v1.instances.values_list("sop_instance_uid", "blob_id")) == v1_blobs
    old = v1.instances.get(sop_instance_uid=ds.SOPInstanceUID)
    new = v2.instances.get(sop_instance_uid=ds.SOPInstanceUID)
    assert open_blob(old.blob).read() == original.read_bytes()
    assert open_blob(new.blob).read() == (changed_dir / original.name).read_bytes()
    # the five unchanged instances share their blobs between versions: no bytes stored twice
    assert Blob.objects.count() == 7
    shutil.rmtree(changed_dir)
