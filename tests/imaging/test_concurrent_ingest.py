"""Two people upload the same study at the same time (a CD copied twice, a coordinator and a
radiologist): both ingests must finish, with one copy of every instance and its bytes."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from django.db import connection

from apps.imaging import services
from apps.imaging.blobs import open_blob
from apps.imaging.models import Blob, FileOutcome, Instance, JobState, Study
from apps.imaging.services import ingest_job_create, ingest_job_run
from bench.ingest.synthetic import write_ct_series
from tests.threads import in_thread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
@pytest.mark.parametrize("round_", range(3))
def test_the_same_study_ingested_twice_at_once(org_a, tmp_path, monkeypatch, round_):
    write_ct_series(tmp_path, slices=12, rows=32, columns=32)
    monkeypatch.setattr(services, "BATCH_FILES", 2)  # several batches, so that the jobs interleave
    jobs = [ingest_job_create(organization=org_a, source_path=str(tmp_path), enqueue=False) for _ in range(2)]
    start = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def run(job):
        start.wait()
        ingest_job_run(job_id=job.pk)

    for thread in [in_thread(errors, run, job) for job in jobs]:
        thread.join(timeout=120)
    assert not errors
    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.DONE
    outcomes = sorted(o for job in jobs for o in job.files.values_list("outcome", flat=True))
    assert outcomes.count(FileOutcome.INGESTED) == 12 and outcomes.count(FileOutcome.DUPLICATE) == 12
    assert Study.objects.count() == 1 and Instance.objects.count() == 12
    shas = set(Instance.objects.values_list("sha256", flat=True))
    assert len(shas) == 12 and Blob.objects.filter(sha256__in=shas).count() == 12
    for blob in Blob.objects.filter(sha256__in=shas):
        assert hashlib.sha256(open_blob(blob).read()).hexdigest() == blob.sha256


def _readable(org) -> None:
    instances = list(Instance.objects.filter(organization=org).select_related("blob"))
    assert len(instances) == 6
    for inst in instances:
        assert hashlib.sha256(open_blob(inst.blob).read()).hexdigest() == inst.sha256


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
def test_a_deletion_between_an_ingests_lookup_and_its_commit(org_a, org_b, admin_a, small_ct, monkeypatch):
    """Blobs are shared between organizations (dedup). Alpha deletes its study just after
    Beta's ingest of the same files found those blobs: Beta's ingest stores the bytes again
    instead of failing on rows that are gone."""
    ingest_job_run(job_id=ingest_job_create(organization=org_a, source_path=str(small_ct), enqueue=False).pk)
    alpha = Study.objects.get(organization=org_a)
    real_found = services.blobs_found
    failures: list[BaseException] = []

    def found(sha256s):
        result = real_found(sha256s)
        if result and Study.objects.filter(pk=alpha.pk).exists():
            in_thread(failures, services.study_delete, study=alpha, by=admin_a).join(timeout=30)
        return result

    monkeypatch.setattr(services, "blobs_found", found)
    job = ingest_job_run(job_id=ingest_job_create(organization=org_b, source_path=str(small_ct), enqueue=False).pk)
    assert not failures
    assert not Study.objects.filter(pk=alpha.pk).exists()
    assert job.state == JobState.DONE and job.files_ingested == 6
    _readable(org_b)


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
def test_a_deletion_while_an_ingest_commits_keeps_the_blobs_it_takes(org_a, org_b, admin_a, small_ct, monkeypatch):
    """Alpha deletes its study while Beta's ingest, which takes the same blobs, is committing:
    the deletion waits for that commit, then keeps the blobs Beta's instances now use."""
    import time

    ingest_job_run(job_id=ingest_job_create(organization=org_a, source_path=str(small_ct), enqueue=False).pk)
    alpha = Study.objects.get(organization=org_a)
    real_index = services._index
    deletion: list[threading.Thread] = []
    failures: list[BaseException] = []

    def index(*args):
        if not deletion:  # inside Beta's batch transaction, after its blob lookups
            deletion.append(in_thread(failures, services.study_delete, study=alpha, by=admin_a))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not _waiting_on_a_lock():
                time.sleep(0.05)  # until the deletion waits for this transaction (or gives up)
        real_index(*args)

    monkeypatch.setattr(services, "_index", index)
    job = ingest_job_run(job_id=ingest_job_create(organization=org_b, source_path=str(small_ct), enqueue=False).pk)
    deletion[0].join(timeout=30)
    assert not failures
    assert not Study.objects.filter(pk=alpha.pk).exists()
    assert job.state == JobState.DONE and job.files_ingested == 6
    _readable(org_b)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
def test_two_jobs_making_versions_of_one_study_at_once_chain_them(org_a, tmp_path, monkeypatch):
    """Two uploads at once, each a new file of a study already stored: the second job waits for
    the first's lock on version 1 while the first makes version 2. It must then add to version 2
    (version 3 after it), not make a second version 2 after version 1: that failed the job with
    an IntegrityError (PostgreSQL gives a waiting lock the row it chose before it waited)."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    study_dir = tmp_path / "study"
    write_ct_series(study_dir, slices=4, rows=32, columns=32)
    first = ingest_job_create(organization=org_a, source_path=str(study_dir), enqueue=False)
    ingest_job_run(job_id=first.pk)
    folders = []
    for n in range(2):
        ds = dcmread(sorted(study_dir.iterdir())[0])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        (folder := tmp_path / f"more{n}").mkdir()
        ds.save_as(folder / "new.dcm")
        folders.append(folder)
    # a changed file makes a version; the first job holds the lock a moment after making it
    for folder in folders:
        ds = dcmread(folder / "new.dcm")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = dcmread(
            sorted(study_dir.iterdir())[1 + folders.index(folder)]).SOPInstanceUID
        ds.InstanceNumber = 99
        ds.save_as(folder / "new.dcm")
    made, real = threading.Event(), services._new_version

    def slow_new_version(*args, **kwargs):
        study = real(*args, **kwargs)
        if not made.is_set():
            made.set()
            time.sleep(1.0)  # the other job now waits for version 1's lock
        return study

    monkeypatch.setattr(services, "_new_version", slow_new_version)
    jobs = [ingest_job_create(organization=org_a, source_path=str(f), enqueue=False) for f in folders]
    errors: list[BaseException] = []
    one = in_thread(errors, lambda: ingest_job_run(job_id=jobs[0].pk))
    assert made.wait(30)
    time.sleep(0.2)
    two = in_thread(errors, lambda: ingest_job_run(job_id=jobs[1].pk))
    one.join(timeout=60)
    two.join(timeout=60)
    assert not errors
    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.DONE_WITH_WARNINGS, job.error
    versions = list(Study.objects.order_by("version").values_list("version", "previous__version"))
    assert versions == [(1, None), (2, 1), (3, 2)]
    assert Study.objects.get(version=3).instances.count() == 4


def test_finishing_a_job_keeps_the_warnings_another_job_added_meanwhile(org_a, tmp_path):
    """A job's end reads its studies without a lock: a warning another job's batch stored since
    (a changed instance, short image data) is kept, and the study is ready with warnings; the
    whole row saved as the job had read it put the old warnings back."""
    from apps.imaging.models import StudyState

    write_ct_series(tmp_path, slices=2, rows=32, columns=32)
    job = ingest_job_create(organization=org_a, source_path=str(tmp_path), enqueue=False)
    ingest_job_run(job_id=job.pk)
    read_by_the_job = Study.objects.get()
    added = [{"kind": "pixel_data_short", "sop_instance_uid": "1.2.3"}]
    Study.objects.filter(pk=read_by_the_job.pk).update(warnings=added)
    services._finish_study(read_by_the_job)
    study = Study.objects.get()
    assert study.warnings == added and study.state == StudyState.READY_WITH_WARNINGS
