"""A job that fails part way never leaves a study processing: a study stored before it, which its
batches set processing while they added to it, is finished from what it holds (its counts
included) with a warning that the upload failed part way; a study the job created is failed,
its counts saying what it holds. A run that finishes the job later removes the warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from pydicom.uid import generate_uid

from apps.imaging import services
from apps.imaging.models import IngestJob, JobState, Study, StudyState
from apps.imaging.services import UPLOAD_FAILED, ingest_job_create, ingest_job_fail, ingest_job_run
from apps.imaging.tasks import ingest_job_run_task
from bench.ingest.synthetic import ct_slice

pytestmark = pytest.mark.django_db


def _write(folder: Path, study_uid: str, series_uid: str, indexes: range) -> None:
    folder.mkdir(exist_ok=True)
    for i in indexes:
        ct_slice(study_uid=study_uid, series_uid=series_uid, index=i, rows=8, columns=8).save_as(
            folder / f"{i:02d}.dcm", enforce_file_format=True)


@pytest.fixture
def failing_at(monkeypatch):
    """Files are committed one a batch; the file named ``name`` (its last part) fails the run
    with an error the ingest does not expect, once (a retry then reads it)."""
    monkeypatch.setattr(services, "BATCH_FILES", 1)
    prepare = services._prepare
    failing: set[str] = set()

    def fail_once(entry, fh):
        if Path(entry.path).name in failing:
            failing.discard(Path(entry.path).name)
            raise OSError("disk went away")
        return prepare(entry, fh)

    monkeypatch.setattr(services, "_prepare", fail_once)
    return failing.add


def _give_up(job: IngestJob) -> IngestJob:
    """The task runs the job and gives up on the error (as a worker would)."""
    ingest_job_run_task.apply(args=(job.pk,), throw=False)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    return job


@pytest.fixture
def stored(org_a, tmp_path) -> Study:
    """A study of two images, ready before the upload that fails."""
    uids = generate_uid(), generate_uid()
    _write(tmp_path / "first", *uids, range(2))
    ingest_job_run(job_id=ingest_job_create(organization=org_a, source_path=str(tmp_path / "first"),
                                            enqueue=False).pk)
    study = Study.objects.get()
    assert (study.state, study.num_instances) == (StudyState.READY, 2)
    return study


def _adding(org_a, stored: Study, tmp_path: Path) -> IngestJob:
    """An upload of three more images of the stored study (the third fails the run)."""
    _write(tmp_path / "more", stored.study_instance_uid, stored.series.get().series_instance_uid, range(2, 5))
    return ingest_job_create(organization=org_a, source_path=str(tmp_path / "more"), enqueue=False)


def test_a_study_stored_before_a_failed_job_is_finished_with_what_it_holds(org_a, admin_a, stored, tmp_path,
                                                                            failing_at):
    failing_at("04.dcm")
    job = _give_up(_adding(org_a, stored, tmp_path))
    stored.refresh_from_db()
    assert stored.state == StudyState.READY_WITH_WARNINGS  # not processing for ever
    # what was committed before the failure (a batch is committed once the next one is read)
    assert stored.num_instances == stored.instances.count() > 2
    assert stored.series.get().num_instances == stored.num_instances
    assert stored.warnings == [{"kind": UPLOAD_FAILED, "job": str(job.public_id)}]
    client = Client()
    client.force_login(admin_a)
    page = client.get(reverse("imaging:study_detail", kwargs={"study_id": stored.public_id}))
    assert f"An upload that added images to this study failed part way (reference {job.public_id})" in (
        page.content.decode())
    ingest_job_fail(job_id=job.pk, error="OSError")  # told twice: one warning
    stored.refresh_from_db()
    assert len(stored.warnings) == 1


def test_resuming_the_failed_job_removes_its_warning(org_a, stored, tmp_path, failing_at):
    failing_at("04.dcm")
    job = _give_up(_adding(org_a, stored, tmp_path))
    job = ingest_job_run(job_id=job.pk)  # --resume
    stored.refresh_from_db()
    assert job.state == JobState.DONE
    assert (stored.state, stored.warnings, stored.num_instances) == (StudyState.READY, [], 5)


def test_a_study_another_job_is_adding_to_is_left_to_that_job(org_a, stored, tmp_path, failing_at):
    other = IngestJob.objects.create(organization=org_a, source_path="/elsewhere", state=JobState.RUNNING)
    other.studies.add(stored)
    failing_at("04.dcm")
    _give_up(_adding(org_a, stored, tmp_path))
    stored.refresh_from_db()
    assert stored.state == StudyState.PROCESSING  # the other job finishes it
    assert stored.warnings == []


def test_a_study_the_failed_job_created_is_failed_and_counted(org_a, tmp_path, failing_at):
    _write(tmp_path / "new", generate_uid(), generate_uid(), range(3))
    failing_at("02.dcm")
    _give_up(ingest_job_create(organization=org_a, source_path=str(tmp_path / "new"), enqueue=False))
    study = Study.objects.get()
    assert study.state == StudyState.FAILED
    assert study.num_instances == study.instances.count() > 0
