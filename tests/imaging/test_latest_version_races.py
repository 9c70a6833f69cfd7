"""The latest version of a study, locked, while other transactions change the study's versions
(``services._Run._latest_locked``): a version deleted between its read and its lock is read
again, not a failed job; version 1 made by another job at the same time is locked before the job
adds to it. Under PostgreSQL's READ COMMITTED, as the portal runs."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import DatabaseError, connection, transaction
from pydicom import dcmread
from pydicom.uid import generate_uid

from apps.imaging import services
from apps.imaging.models import FileOutcome, JobState, Study, StudyState
from apps.imaging.services import ingest_job_create, ingest_job_run
from bench.ingest.synthetic import write_ct_series
from tests.threads import in_thread, waiting_on_a_lock

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")]

TIMEOUT = 30


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _holding(failures, held: threading.Event, release: threading.Event, fn) -> threading.Thread:
    """Run ``fn`` in a transaction of another connection, and keep it open (its locks held, what
    it wrote uncommitted) until ``release``."""
    def run():
        with transaction.atomic():
            fn()
            held.set()
            assert release.wait(TIMEOUT)

    return in_thread(failures, run)


def _job(org, folder):
    return ingest_job_create(organization=org, source_path=str(folder), enqueue=False)


def _run(failures, job) -> threading.Thread:
    return in_thread(failures, ingest_job_run, job_id=job.pk)


def test_a_newer_version_deleted_between_its_read_and_its_lock_is_read_again(org_a, tmp_path):
    """The job waits for version 1's lock; meanwhile version 2 is made (committed) and then
    deleted by a transaction that commits only once the job waits for version 2's lock. The job
    must fall back to version 1, still the latest, and finish: its lock on version 2 found no row
    and the job failed with DoesNotExist."""
    write_ct_series(tmp_path / "v1", slices=2, rows=8, columns=8)
    _run([], _job(org_a, tmp_path / "v1")).join(TIMEOUT)
    v1 = Study.objects.get()
    ds = dcmread(sorted((tmp_path / "v1").iterdir())[0])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    (tmp_path / "more").mkdir()
    ds.save_as(tmp_path / "more" / "new.dcm")
    job = _job(org_a, tmp_path / "more")
    failures: list[BaseException] = []
    events = {name: threading.Event() for name in ("v1 held", "v1 release", "v2 deleted", "v2 release")}

    # version 1 held as an update of it holds it (a job's end saving it, say): a FOR UPDATE waits,
    # a row that points at it (version 2's ``previous``) does not
    holder = _holding(failures, events["v1 held"], events["v1 release"],
                      lambda: Study.objects.select_for_update(no_key=True).get(pk=v1.pk))
    assert events["v1 held"].wait(TIMEOUT)
    runner = _run(failures, job)
    _until(lambda: any('FROM "imaging_study"' in q for q in waiting_on_a_lock()),
           "the job to wait for version 1's lock")
    v2 = Study.objects.create(organization=org_a, study_instance_uid=v1.study_instance_uid, version=2, previous=v1,
                              patient_id=v1.patient_id, state=StudyState.READY)
    deleter = _holding(failures, events["v2 deleted"], events["v2 release"],
                       lambda: Study.objects.select_for_update().get(pk=v2.pk).delete())
    assert events["v2 deleted"].wait(TIMEOUT)
    events["v1 release"].set()
    holder.join(TIMEOUT)
    # (pg_stat_activity keeps a query's first 1024 bytes: its WHERE, not its FOR UPDATE)
    _until(lambda: any(f'"imaging_study"."id" = {v2.pk}' in q for q in waiting_on_a_lock()),
           "the job to wait for version 2's lock")
    events["v2 release"].set()
    deleter.join(TIMEOUT)
    runner.join(TIMEOUT)

    assert not failures, failures
    job.refresh_from_db()
    assert job.state == JobState.DONE, job.error
    assert job.files.get().outcome == FileOutcome.INGESTED
    assert list(Study.objects.values_list("pk", flat=True)) == [v1.pk]
    assert v1.instances.count() == 3


def test_a_job_that_lost_the_race_to_make_version_1_locks_it_before_adding(org_a, tmp_path, monkeypatch):
    """Another transaction makes version 1 of the study while the job makes it too: the job's
    insert waits for that commit and fails on the unique constraint. The job then adds to the
    other's version 1, and must hold its lock while it does (the lock study_delete, study_attach
    and other jobs wait for); it took the row unlocked."""
    write_ct_series(tmp_path / "new", slices=2, rows=8, columns=8)
    first = dcmread(sorted((tmp_path / "new").iterdir())[0], stop_before_pixels=True)
    job = _job(org_a, tmp_path / "new")
    failures: list[BaseException] = []
    held, release = threading.Event(), threading.Event()
    made: list[Study] = []

    def make_version_1():
        made.append(Study.objects.create(organization=org_a, study_instance_uid=first.StudyInstanceUID, version=1,
                                         patient_id=first.PatientID, state=StudyState.PROCESSING))

    locked_while_indexing: list[bool] = []
    real_index = services._index

    def index(run, item, blob, sop_uids):
        if not locked_while_indexing:  # the job is about to add to version 1: another connection tries its lock
            def probe():
                with transaction.atomic():
                    try:
                        Study.objects.select_for_update(nowait=True).filter(pk=made[0].pk).first()
                    except DatabaseError:
                        locked_while_indexing.append(True)
                    else:
                        locked_while_indexing.append(False)

            in_thread(failures, probe).join(TIMEOUT)
        real_index(run, item, blob, sop_uids)

    monkeypatch.setattr(services, "_index", index)
    maker = _holding(failures, held, release, make_version_1)
    assert held.wait(TIMEOUT)
    runner = _run(failures, job)
    _until(lambda: any('INSERT INTO "imaging_study"' in q for q in waiting_on_a_lock()),
           "the job's insert of version 1 to wait")
    release.set()
    maker.join(TIMEOUT)
    runner.join(TIMEOUT)

    assert not failures, failures
    assert locked_while_indexing == [True], "the job added to version 1 without its lock"
    job.refresh_from_db()
    assert job.state == JobState.DONE, job.error
    assert list(Study.objects.values_list("pk", flat=True)) == [made[0].pk]
    assert made[0].instances.count() == 2
