"""``manage.py ingest`` never leaves a job running: a run that raises (or is interrupted) fails its
job, as the task fails one it gives up on, so its studies are not left processing and can be
deleted; the terminal is told the error's type and the job, never a path (it may name the
patient). What is not a regular file in a tree (a socket, a pipe) and a DICOMDIR reference with
a NUL in it are skipped with a reason, not fatal."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from apps.imaging import services, sources
from apps.imaging.models import FileOutcome, IngestJob, JobState, Study, StudyState
from apps.imaging.services import study_delete
from bench.ingest.synthetic import ct_slice

pytestmark = pytest.mark.django_db

#: a file name as export tools write them, after a (fictional) patient
NAMED = "Fakeperson_Ines_2.dcm"


def _write(folder: Path, study_uid: str, series_uid: str, names: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        ct_slice(study_uid=study_uid, series_uid=series_uid, index=i, rows=8, columns=8).save_as(
            folder / name, enforce_file_format=True)


@pytest.fixture
def raising(monkeypatch):
    """The run raises ``error`` (its message quoting the file's path) when it reads ``NAMED``."""
    monkeypatch.setattr(services, "BATCH_FILES", 1)
    prepare = services._prepare
    raised: list[BaseException] = []

    def prepare_or_raise(entry, fh):
        if raised and Path(entry.path).name == NAMED:
            raise raised.pop()
        return prepare(entry, fh)

    monkeypatch.setattr(services, "_prepare", prepare_or_raise)
    return raised.append


@pytest.mark.parametrize(("error", "said"), [
    (OSError(f"[Errno 5] Input/output error: '/exports/{NAMED}'"), "stopped by an error (OSError)"),
    (KeyboardInterrupt(), "interrupted"),
])
def test_a_run_that_raises_fails_its_job_and_names_no_path(org_a, admin_a, tmp_path, raising, error, said):
    folder = tmp_path / "Fakeperson_Ines"
    _write(folder, generate_uid(), generate_uid(), ["Fakeperson_Ines_0.dcm", "Fakeperson_Ines_1.dcm", NAMED])
    raising(error)
    with pytest.raises(CommandError) as failed:
        call_command("ingest", str(folder), org=org_a.slug, no_progress=True, stdout=io.StringIO())
    job = IngestJob.objects.get()
    assert (job.state, job.error) == (JobState.FAILED, type(error).__name__)
    message = str(failed.value)
    assert said in message and str(job.public_id) in message
    assert "Fakeperson" not in message and "exports" not in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__  # no traceback of the error
    study = Study.objects.get()
    assert study.state == StudyState.FAILED  # made by the failed job: never left processing
    study_delete(study=study, by=admin_a)  # not refused as busy
    assert not Study.objects.exists()


def test_a_job_the_command_failed_is_finished_by_resume(org_a, tmp_path, raising):
    folder = tmp_path / "export"
    _write(folder, generate_uid(), generate_uid(), ["a.dcm", "b.dcm", NAMED])
    raising(OSError("disk"))
    with pytest.raises(CommandError):
        call_command("ingest", str(folder), org=org_a.slug, no_progress=True, stdout=io.StringIO())
    job = IngestJob.objects.get()
    call_command("ingest", resume=str(job.public_id), no_progress=True, stdout=io.StringIO())
    job.refresh_from_db()
    study = Study.objects.get()
    assert (job.state, job.files_ingested, study.state, study.num_instances) == (JobState.DONE, 3,
                                                                                StudyState.READY, 3)


def test_a_socket_in_the_tree_is_skipped_with_a_reason(org_a, tmp_path):
    folder = tmp_path / "tree"
    _write(folder, generate_uid(), generate_uid(), ["a.dcm"])
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / NAMED))
    try:
        out = io.StringIO()
        call_command("ingest", str(folder), org=org_a.slug, no_progress=True, stdout=out)
    finally:
        sock.close()
    job = IngestJob.objects.get()
    assert (job.state, job.files_ingested, job.files_skipped) == (JobState.DONE_WITH_WARNINGS, 1, 1)
    line = job.files.get(path=NAMED)
    assert line.outcome == FileOutcome.SKIPPED and "not a regular file" in line.reason
    assert "Fakeperson" not in out.getvalue()


def test_a_pipe_is_never_opened(tmp_path):
    """Opened, a pipe would wait for a writer for ever: it is reported, not read."""
    folder = tmp_path / "tree"
    folder.mkdir()
    os.mkfifo(folder / "pipe.dcm")
    os.mkfifo(tmp_path / "alone.dcm")
    (entry,) = sources.path_entries(folder)
    assert (entry.path, entry.skip_reason, entry.open) == ("pipe.dcm", sources.NOT_A_FILE, None)
    (entry,) = sources.path_entries(tmp_path / "alone.dcm")
    assert (entry.skip_reason, entry.open) == (sources.NOT_A_FILE, None)


def _dicomdir(folder: Path, refs: list[list[str]]) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds = Dataset()
    ds.file_meta, ds.preamble = meta, b"\0" * 128
    records = []
    for ref in refs:
        record = Dataset()
        record.DirectoryRecordType = "IMAGE"
        record.ReferencedFileID = ref
        records.append(record)
    ds.DirectoryRecordSequence = Sequence(records)
    path = folder / "DICOMDIR"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_dicomdir_reference_with_a_nul_is_skipped_with_a_reason(org_a, tmp_path):
    _write(tmp_path / "IMG", generate_uid(), generate_uid(), ["A"])
    path = _dicomdir(tmp_path, [["IMG", "A\0B"], ["IMG", "A"]])
    out = io.StringIO()
    call_command("ingest", str(path), org=org_a.slug, no_progress=True, stdout=out)
    job = IngestJob.objects.get()
    assert (job.state, job.files_ingested, job.files_skipped) == (JobState.DONE_WITH_WARNINGS, 1, 1)
    assert "NUL byte" in job.files.get(outcome=FileOutcome.SKIPPED).reason


def test_a_job_whose_command_was_killed_is_failed_by_the_sweep(org_a, tmp_path, settings):
    """A command killed (SIGKILL, the machine restarted) cannot fail its job: the lost-job sweep
    fails a command's job running with no batch committed for the stalled period, and the study it
    was adding to is finished, not left processing. One alive, or queued behind it, is left alone."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.imaging.services import COMMAND_STOPPED, ingest_jobs_lost_send

    folder = tmp_path / "export"
    _write(folder, generate_uid(), generate_uid(), ["a.dcm"])
    call_command("ingest", str(folder), org=org_a.slug, no_progress=True, stdout=io.StringIO())
    study = Study.objects.get()
    now = timezone.now()
    silent = now - timedelta(minutes=settings.LIGHTBOX_INGEST_STALLED_MINUTES + 1)
    killed, alive, waiting = (
        IngestJob.objects.create(organization=org_a, source_path=str(folder), state=state, task_id="resume-x",
                                 started_at=heartbeat, heartbeat_at=heartbeat)
        for state, heartbeat in [(JobState.RUNNING, silent), (JobState.RUNNING, now), (JobState.QUEUED, None)])
    killed.studies.add(study)
    Study.objects.filter(pk=study.pk).update(state=StudyState.PROCESSING)  # as its batch left it
    assert ingest_jobs_lost_send(now=now) == (0, 1)
    for job in (killed, alive, waiting):
        job.refresh_from_db()
    assert (killed.state, killed.error, killed.failure.code) == (JobState.FAILED, COMMAND_STOPPED, "unexpected")
    assert (alive.state, waiting.state) == (JobState.RUNNING, JobState.QUEUED)
    study.refresh_from_db()
    assert study.state == StudyState.READY_WITH_WARNINGS


def test_a_job_whose_source_path_is_gone_fails_rather_than_calling_it_a_pipe(org_a, tmp_path):
    """A server-side path that no longer exists when its job runs fails the job (its folder was
    moved or deleted: the uploader must know), as before 512b5d6; it is not a file "not read"
    because it is a device, a socket or a pipe."""
    from apps.imaging.models import IngestJob, JobState
    from apps.imaging.services import ingest_job_create
    from apps.imaging.tasks import ingest_job_run_task

    job = ingest_job_create(organization=org_a, source_path=str(tmp_path / "gone"), enqueue=False)
    assert ingest_job_run_task.apply(args=(job.pk,), throw=False).failed()
    job = IngestJob.objects.get(pk=job.pk)
    assert job.state == JobState.FAILED and not job.files.exists()
