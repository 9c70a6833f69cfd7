"""An upload that completes while the Celery broker cannot be reached: the client is told its bytes
are in (no 500), the job waits as queued, and it is ingested once the broker answers."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.core.models import UnsentTask
from apps.core.queue import unsent_tasks_send
from apps.imaging.models import IngestJob, JobState, Study, Upload, UploadState
from apps.imaging.services import ingest_job_create
from apps.imaging.tasks import ingest_job_run_task
from apps.organizations.models import Role
from tests.brokers import broker_unreachable
from tests.factories import CaseFactory, member
from tests.imaging.test_tus import ROOT, TUS, _meta, _patch


@pytest.mark.django_db(transaction=True)  # the task is sent when the request's transaction commits
def test_an_upload_completed_while_the_broker_is_down_is_ingested_once_it_answers(org_a, small_ct):
    client = Client(raise_request_exception=False)
    client.force_login(member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"))
    data = sorted(small_ct.iterdir())[0].read_bytes()
    created = client.post(ROOT, HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_UPLOAD_METADATA=_meta(filename="a.dcm"), **TUS)
    url = created["Location"].split("testserver", 1)[-1]
    with broker_unreachable():
        response = _patch(client, url, 0, data)
    assert response.status_code == 204, response.content[:200]
    assert response["Upload-Offset"] == str(len(data))
    job = IngestJob.objects.get()
    assert Upload.objects.get().state == UploadState.COMPLETE and job.state == JobState.QUEUED
    assert client.get(url).json()["job"]["state"] == JobState.QUEUED  # the page shows it waiting
    assert list(UnsentTask.objects.values_list("args", flat=True)) == [[job.pk]]
    assert unsent_tasks_send() == 1  # the broker answers again (here: tasks run eagerly)
    job.refresh_from_db()
    assert job.state == JobState.DONE and Study.objects.get().num_instances == 1


@pytest.mark.django_db
def test_renditions_the_broker_cannot_take_after_an_ingest_leave_the_job_done(
    org_a, small_ct, django_capture_on_commit_callbacks
):
    """Renditions are queued by the ingest task itself: a refused send failed the finished job."""
    job = ingest_job_create(
        organization=org_a, source_path=str(small_ct), case=CaseFactory(organization=org_a), enqueue=False
    )
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True):
        ingest_job_run_task.apply(args=(job.pk,))  # in this process, as a worker runs it
    job.refresh_from_db()
    assert job.state == JobState.DONE
    study = job.studies.get()
    assert list(UnsentTask.objects.values_list("task", "args")) == [
        ("apps.renditions.tasks.study_renditions_task", [study.pk])
    ]
    assert unsent_tasks_send() == 1
    assert study.renditions.exists()
