"""A ``manage.py ingest`` run shows it is alive between its batch commits (``_Run.alive``: its
job's ``heartbeat_at`` touched at least every ``HEARTBEAT_SECONDS``), so the lost-job sweep does not
fail a job whose batch takes long, nor a ``--resume`` skipping a big tree's done entries. A run
whose job was taken from it all the same exits non-zero with the ``--resume`` hint; and with
several paths, a path's job is made just before it runs, so an earlier path's failure leaves no
job queued for ever (the sweep never fails a queued command job)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from pydicom.uid import generate_uid

from apps.imaging import services
from apps.imaging.models import IngestJob, JobState
from tests.imaging.test_command_failures import NAMED, _write, raising  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

STEP = timedelta(minutes=10)  # each entry read "takes" this long: four of them outlast the 30 minutes


def _slow_entries(monkeypatch) -> list[tuple[int, int]]:
    """From now, each entry the run lists takes ``STEP`` of the clock (``timezone.now``, which the
    sweep and the heartbeat read); before the fifth, the lost-job sweep runs at that time (what it
    returned is kept in the list returned). No batch commits meanwhile (64 files to a batch)."""
    clock = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: clock[0])
    monkeypatch.setattr(services, "HEARTBEAT_SECONDS", 0)  # every entry is a minute or more apart
    entries = services._entries
    swept: list[tuple[int, int]] = []

    def slow(job):
        for n, entry in enumerate(entries(job), 1):
            clock[0] += STEP
            if n == 5:
                swept.append(services.ingest_jobs_lost_send(now=clock[0]))
            yield entry

    monkeypatch.setattr(services, "_entries", slow)
    return swept


def test_a_batch_longer_than_the_stalled_time_is_not_failed_by_the_sweep(org_a, tmp_path, monkeypatch):
    folder = tmp_path / "a"
    _write(folder, generate_uid(), generate_uid(), [f"{i}.dcm" for i in range(6)])
    swept = _slow_entries(monkeypatch)
    call_command("ingest", str(folder), "--org", org_a.slug, "--no-progress", stdout=io.StringIO())
    assert swept == [(0, 0)]
    job = IngestJob.objects.get()
    assert job.state == JobState.DONE and job.files_ingested == 6


def test_a_resume_skipping_done_entries_is_not_failed_by_the_sweep(org_a, tmp_path, raising, monkeypatch):  # noqa: F811
    folder = tmp_path / "a"
    _write(folder, generate_uid(), generate_uid(), ["0.dcm", "1.dcm", "2.dcm", "3.dcm", "4.dcm", NAMED])
    raising(OSError("boom"))  # the first run stops at NAMED (listed last), four files committed
    with pytest.raises(CommandError):
        call_command("ingest", str(folder), "--org", org_a.slug, "--no-progress", stdout=io.StringIO())
    job = IngestJob.objects.get()
    assert job.state == JobState.FAILED and job.files.count() == 4
    monkeypatch.setattr(services, "BATCH_FILES", 64)
    swept = _slow_entries(monkeypatch)  # the four done entries are skipped, 40 minutes with no commit
    call_command("ingest", "--resume", str(job.public_id), "--no-progress", stdout=io.StringIO())
    assert swept == [(0, 0)]
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.files.count() == 6


def test_a_run_whose_job_the_sweep_failed_exits_non_zero(org_a, tmp_path, monkeypatch):
    """The heartbeat keeps its real pace (a minute): a sweep half an hour ahead fails the job."""
    folder = tmp_path / "a"
    _write(folder, generate_uid(), generate_uid(), [f"{i}.dcm" for i in range(4)])
    monkeypatch.setattr(services, "BATCH_FILES", 1)
    prepare = services._prepare
    calls = []

    def slow(entry, fh):
        calls.append(entry)
        if len(calls) == 3:
            services.ingest_jobs_lost_send(now=timezone.now() + timedelta(minutes=31))
        return prepare(entry, fh)

    monkeypatch.setattr(services, "_prepare", slow)
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("ingest", str(folder), "--org", org_a.slug, "--no-progress", stdout=out)
    job = IngestJob.objects.get()
    assert job.state == JobState.FAILED and job.error == services.COMMAND_STOPPED
    assert f"manage.py ingest --resume {job.public_id}" in str(raised.value)
    assert "ingested" not in out.getvalue()  # no summary line as if it ended


def test_an_alive_check_within_the_minute_makes_no_query(org_a, tmp_path, django_assert_num_queries):
    job = services.ingest_job_create(organization=org_a, source_path=str(tmp_path), enqueue=False)
    run = services._Run(job)
    try:
        with django_assert_num_queries(0):
            for _ in range(1000):
                run.alive()
    finally:
        run.writer.shutdown()


def test_with_several_paths_a_failure_leaves_no_job_queued(org_a, tmp_path, raising):  # noqa: F811
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _write(a, generate_uid(), generate_uid(), ["x.dcm"])
    _write(b, generate_uid(), generate_uid(), ["x.dcm", NAMED])
    _write(c, generate_uid(), generate_uid(), ["y.dcm"])
    raising(OSError("boom"))
    with pytest.raises(CommandError) as raised:
        call_command("ingest", str(a), str(b), str(c), "--org", org_a.slug, "--no-progress",
                     stdout=io.StringIO())
    states = list(IngestJob.objects.order_by("pk").values_list("state", flat=True))
    assert states == [JobState.DONE, JobState.FAILED]  # c's job was never made
    assert str(raised.value).endswith("; not ingested (no job made): PATH 3")
    assert str(tmp_path) not in str(raised.value)
