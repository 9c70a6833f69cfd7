"""Two people upload the same study at the same time (a CD copied twice, a coordinator and a
radiologist): both ingests must finish, with one copy of every instance and its bytes."""

from __future__ import annotations

import hashlib
import threading

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
