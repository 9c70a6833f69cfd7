"""Must show 5: a worker killed in the middle of an ingest leaves no partial study; the retried
task finishes it with no duplicate rows or blobs.

Always: ``manage.py ingest`` (the same service the task runs) is SIGKILLed after its first batch
committed, then the job is resumed (what the task's retry does). With REDIS_URL set: a real
Celery worker (Redis broker) has its pool process SIGKILLed mid-task; acks_late and
reject_on_worker_lost make the broker deliver the task again, and the worker finishes it."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from bench.ingest import harness
from bench.ingest.synthetic import write_ct_series

pytestmark = [pytest.mark.slow]

#: enough work after the first committed batch (32 files) that the kill always lands mid-ingest,
#: even when the machine is busy and the poller wakes late: files, not bytes, make an ingest long
#: (each is parsed, hashed, written and indexed), so many small slices (160 of 512 x 512 were
#: ingested whole before a poller on a loaded machine woke, twice in a row on 2026-12-07)
SLICES = 320


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash_ct")
    paths = write_ct_series(folder, slices=SLICES, rows=256, columns=256)
    return folder, {dcmread(p, stop_before_pixels=True).SOPInstanceUID: hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in paths}


def _db(inst: harness.Instance) -> Path:
    return Path(inst.env["DATABASE_URL"].removeprefix("sqlite:///"))


def _count(inst: harness.Instance, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{_db(inst)}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _wait_for(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


STATE = r"""
import json
from apps.imaging.models import IngestJob, Study
job = IngestJob.objects.get()
print("RESULT" + json.dumps({"job": str(job.public_id), "state": job.state, "attempts": job.attempts,
      "studies": [[s.state, s.num_instances] for s in Study.objects.all()]}))
"""


def _assert_complete(inst: harness.Instance, expected: dict[str, str]) -> None:
    stored = harness.verify(inst)
    assert [s["state"] for s in stored["studies"]] == ["ready"]
    assert stored["studies"][0]["instances"] == SLICES
    # no duplicate rows (the mapping would hide them: count too) and every byte identical
    assert _count(inst, "select count(*) from imaging_instance") == SLICES
    assert {uid: v[1] for uid, v in stored["instances"].items()} == expected
    # no duplicate blobs: one row and one stored file per distinct content
    assert stored["blobs"] == SLICES
    files = [f for f in (inst.storage_root / "blobs").rglob("*") if f.is_file()]
    assert len(files) == SLICES
    assert _count(inst, "select count(*) from imaging_ingestfileresult") == SLICES


def test_killed_ingest_process_resumes_without_duplicates(tmp_path, study):
    folder, expected = study
    inst = harness.prepare(tmp_path / "var", fast_db=True)
    proc = subprocess.Popen([sys.executable, "manage.py", "ingest", str(folder), "--org", "bench", "--no-progress"],
                            cwd=harness.ROOT, env=inst.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _count(inst, "select count(*) from imaging_ingestfileresult") > 0, what="first batch")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = _count(inst, "select count(*) from imaging_ingestfileresult")
    assert 0 < done < SLICES, "killed mid-ingest"
    state = inst.shell_json(STATE)
    assert state["state"] == "running"
    assert all(s[0] != "ready" for s in state["studies"]), "a partial study must not be shown as ready"
    inst.manage("ingest", "--resume", state["job"], "--no-progress")
    state = inst.shell_json(STATE)
    assert (state["state"], state["attempts"]) == ("done", 2)
    _assert_complete(inst, expected)


ENQUEUE = r"""
import json
from django.db import transaction
from apps.imaging.services import ingest_job_create
from apps.organizations.models import Organization
with transaction.atomic():
    job = ingest_job_create(organization=Organization.objects.get(slug="bench"), source_path=%r)
print("RESULT" + json.dumps({"job": str(job.public_id)}))
"""


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a Redis broker (REDIS_URL)")
def test_killed_celery_worker_redelivers_and_finishes(tmp_path, study):
    folder, expected = study
    # a Redis database of its own, flushed here (no stale tasks): flushing the suite's own emptied
    # what tests running beside it had counted there (tests/test_settings.py's invitation failures)
    redis_url = harness.redis_db(os.environ["REDIS_URL"], 12)
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    inst = harness.prepare(tmp_path / "var", fast_db=True, REDIS_URL=redis_url)
    worker = harness.start_worker(inst)
    try:
        _wait_for(lambda: _children(worker.pid), timeout=60, what="worker pool")
        inst.shell_json(ENQUEUE % str(folder))
        _wait_for(lambda: _count(inst, "select count(*) from imaging_ingestfileresult") > 0, what="first batch")
        pool = _children(worker.pid)
        assert pool, "the worker has a pool process"
        for pid in pool:
            os.kill(pid, signal.SIGKILL)   # the process running the task dies mid-ingest
        done = _count(inst, "select count(*) from imaging_ingestfileresult")
        assert done < SLICES, "killed mid-ingest"
        _wait_for(lambda: inst.shell_json(STATE)["state"] == "done", timeout=300, what="redelivered task")
    finally:
        harness.stop(worker)
    state = inst.shell_json(STATE)
    assert state["attempts"] >= 2
    _assert_complete(inst, expected)
