"""Two people upload the same study at the same time (a CD copied twice, a coordinator and a
radiologist): both ingests must finish, with one copy of every instance and its bytes."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection, connections

from apps.imaging import services
from apps.imaging.blobs import open_blob
from apps.imaging.models import Blob, FileOutcome, Instance, JobState, Study
from apps.imaging.services import ingest_job_create, ingest_job_run
from bench.ingest.synthetic import write_ct_series

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
        try:
            start.wait()
            ingest_job_run(job_id=job.pk)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
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
