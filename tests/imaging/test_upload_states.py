"""The upload page asks for the current state of its uploads' studies (``imaging:upload_states``)
while a line names a study still receiving or processing (a file's ingest ended while the next
file's added to its study), or an upload still queued or running: the states as they are now,
in the reader's language, for the user's own uploads into the active organization only (another
user's, another organization's: 404), naming no patient, no description, no file; read once per
session and upload in the trail (``upload_report.viewed``), and not activity that keeps a page
left open signed in. The page itself: tests/browser/test_upload_states.py."""

from __future__ import annotations

import time
import uuid

import pytest
from django.urls import reverse

from apps.accounts.middleware import LAST_SEEN
from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.imaging.models import JobState, StudyState
from apps.imaging.selectors import UPLOAD_STATES_MAX
from apps.organizations.models import Role
from tests.factories import CaseFactory, IngestJobFactory, InstanceFactory, SeriesFactory, StudyFactory, member

pytestmark = pytest.mark.django_db

URL = reverse("imaging:upload_states")


@pytest.fixture
def uploader(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


def _job(org, user, *studies, state=JobState.DONE, **kwargs):
    job = IngestJobFactory(organization=org, created_by=user, state=state, files_ingested=1, **kwargs)
    job.studies.add(*studies)
    return job


def _images(study, n: int) -> None:
    """``n`` more images stored in ``study`` (what an ingest's batch commits)."""
    series = study.series.first() or SeriesFactory(organization=study.organization, study=study)
    for _ in range(n):
        InstanceFactory(organization=study.organization, series=series)


def _ask(client, *jobs):
    return client.get(URL, {"job": [str(getattr(j, "public_id", j)) for j in jobs]})


def _last_event() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def test_the_states_are_those_of_now_and_name_no_patient(client_as, org_a, uploader):
    case = CaseFactory(organization=org_a, patient__name="Zebediah Quixote", patient__mrn="SYN-4242")
    adding = StudyFactory(organization=org_a, case=case, state=StudyState.PROCESSING, num_instances=1,
                          study_description="CT Quixote chest")
    other = StudyFactory(organization=org_a, case=case, state=StudyState.READY_WITH_WARNINGS, num_instances=3)
    _images(adding, 1)
    _images(other, 3)
    first = _job(org_a, uploader, adding)
    second = _job(org_a, uploader, adding, other)
    running = _job(org_a, uploader, state=JobState.RUNNING)
    c = client_as(uploader)

    r = _ask(c, first, second, running)
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    assert "no-store" in r["Cache-Control"]
    body = r.json()
    studies = {s["id"]: s for s in body["studies"]}
    assert set(studies) == {str(adding.public_id), str(other.public_id)}  # each study once
    assert studies[str(adding.public_id)] == {
        "id": str(adding.public_id), "url": adding.get_absolute_url(), "state": "processing",
        "state_label": "Processing", "final": False, "instances": 1, "instances_label": "1 image"}
    assert (studies[str(other.public_id)]["state"], studies[str(other.public_id)]["state_label"],
            studies[str(other.public_id)]["final"], studies[str(other.public_id)]["instances_label"]) == (
        "ready_with_warnings", "Ready with warnings", True, "3 images")
    jobs = {j["id"]: j for j in body["jobs"]}
    assert set(jobs) == {str(first.public_id), str(second.public_id), str(running.public_id)}
    assert (jobs[str(first.public_id)]["state_label"], jobs[str(first.public_id)]["final"]) == ("Done", True)
    assert (jobs[str(running.public_id)]["state"], jobs[str(running.public_id)]["state_label"],
            jobs[str(running.public_id)]["final"]) == ("running", "Processing", False)
    for name in ("Zebediah", "Quixote", "SYN-4242"):  # no patient, no description
        assert name not in r.content.decode()

    # the next file's ingest ended: the study is ready, the running upload done, each said so
    adding.state = StudyState.READY
    adding.num_instances = 2
    adding.save()
    _images(adding, 1)
    running.state = JobState.DONE
    running.save()
    body = _ask(c, first, running).json()
    [study] = body["studies"]
    assert (study["state"], study["state_label"], study["final"], study["instances_label"]) == (
        "ready", "Ready", True, "2 images")
    assert {j["id"]: j["final"] for j in body["jobs"]} == {str(first.public_id): True, str(running.public_id): True}


def test_the_number_of_images_is_the_studys_now_while_another_upload_adds_to_it(client_as, org_a, uploader):
    """A line said "Ready, 3 images" of a study another upload had added to since (found by QA):
    the number is what the study holds now, not the count its last ingest finished with."""
    study = StudyFactory(organization=org_a, case=CaseFactory(organization=org_a), state=StudyState.READY,
                         num_instances=3)
    _images(study, 3)
    first = _job(org_a, uploader, study)
    c = client_as(uploader)
    [s] = _ask(c, first).json()["studies"]
    assert (s["instances"], s["instances_label"]) == (3, "3 images")

    # the next upload's batches store two more images; the study is processing until it ends
    second = _job(org_a, uploader, study, state=JobState.RUNNING)
    study.state = StudyState.PROCESSING
    study.save()
    _images(study, 2)
    for asked in ((first,), (second,), (first, second)):  # whichever upload's line asks
        [s] = _ask(c, *asked).json()["studies"]
        assert (s["state"], s["instances"], s["instances_label"]) == ("processing", 5, "5 images")


def test_a_failed_study_and_upload_say_so_in_spanish(client_as, org_a):
    user = member(org_a, Role.RADIOLOGIST, email="rad-es@alpha.example", language="es")
    study = StudyFactory(organization=org_a, state=StudyState.FAILED)
    job = _job(org_a, user, study, state=JobState.FAILED, error="StorageUnavailable")
    body = _ask(client_as(user), job).json()
    assert (body["studies"][0]["state"], body["studies"][0]["state_label"], body["studies"][0]["final"]) == (
        "failed", "Fallido", True)
    assert body["jobs"][0]["failure"]["code"] == "storage_unavailable"
    assert body["jobs"][0]["state_label"] == "Fallido"


@pytest.mark.parametrize("whose", ["another_user", "another_organization", "none"])
def test_only_the_users_own_uploads_in_the_organization_are_answered(client_as, org_a, org_b, uploader, whose):
    own = _job(org_a, uploader, StudyFactory(organization=org_a, state=StudyState.PROCESSING))
    if whose == "another_user":  # a colleague of the same organization, who sees its studies
        colleague = member(org_a, Role.RADIOLOGIST)
        hidden = _job(org_a, colleague, StudyFactory(organization=org_a, state=StudyState.PROCESSING)).public_id
    elif whose == "another_organization":
        stranger = member(org_b, Role.RADIOLOGIST)
        hidden = _job(org_b, stranger, StudyFactory(organization=org_b, state=StudyState.PROCESSING)).public_id
    else:
        hidden = uuid.uuid4()
    c = client_as(uploader)
    before = _last_event()
    assert _ask(c, hidden).status_code == 404
    assert _ask(c, own, hidden).status_code == 404  # all or nothing: the own one does not carry it
    assert _ask(c, own).status_code == 200
    denied = AuditEvent.objects.filter(pk__gt=before, action="access.denied")
    assert denied.count() == (0 if whose == "none" else 2)  # the probe recorded where it exists
    # only the own upload's reading is recorded
    assert list(AuditEvent.objects.filter(pk__gt=before, action=A.UPLOAD_REPORT_VIEWED)
                .values_list("target_id", flat=True)) == [str(own.public_id)]


def test_the_users_own_upload_in_another_of_their_organizations_is_404_and_no_probe(client_as, org_a, org_b,
                                                                                      uploader):
    """The page was of the other organization, chosen since in another tab: not answered here,
    and not a probe."""
    from apps.organizations.services import ACTIVE_ORG_SESSION_KEY
    from tests.factories import MembershipFactory

    MembershipFactory(user=uploader, organization=org_b, role=Role.RADIOLOGIST)
    elsewhere = _job(org_b, uploader, StudyFactory(organization=org_b, state=StudyState.PROCESSING))
    c = client_as(uploader)
    session = c.session
    session[ACTIVE_ORG_SESSION_KEY] = str(org_a.public_id)
    session.save()
    before = _last_event()
    assert _ask(c, elsewhere).status_code == 404
    assert not AuditEvent.objects.filter(pk__gt=before, action="access.denied").exists()
    session = c.session
    session[ACTIVE_ORG_SESSION_KEY] = str(org_b.public_id)
    session.save()
    assert _ask(c, elsewhere).status_code == 200


@pytest.mark.parametrize("role", [Role.EXTERNAL_CONSULTANT, Role.PATIENT, Role.ORG_ADMIN])
def test_who_may_not_upload_there_is_refused(client_as, org_a, role):
    """The policy's answer, as for the upload page: an upload of theirs from a role that gave it
    (a membership changed since) is not answered."""
    user = member(org_a, role)
    job = _job(org_a, user, StudyFactory(organization=org_a, state=StudyState.PROCESSING))
    before = _last_event()
    r = _ask(client_as(user), job)
    assert r.status_code == 403
    if role != Role.PATIENT:  # a patient is kept to the portal before any view (the access gate)
        assert AuditEvent.objects.filter(pk__gt=before, action="access.denied").exists()  # the policy's denial
    assert b"processing" not in r.content
    assert not AuditEvent.objects.filter(pk__gt=before, action=A.UPLOAD_REPORT_VIEWED).exists()


def test_signed_out_is_sent_to_sign_in(client, org_a, uploader):
    job = _job(org_a, uploader, StudyFactory(organization=org_a, state=StudyState.PROCESSING))
    r = _ask(client, job)
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


def test_what_is_not_a_question_is_refused(client_as, uploader):
    c = client_as(uploader)
    assert c.get(URL).status_code == 400
    assert _ask(c, "not-an-id").status_code == 404
    assert _ask(c, *(uuid.uuid4() for _ in range(UPLOAD_STATES_MAX + 1))).status_code == 400
    assert c.post(URL, {"job": str(uuid.uuid4())}).status_code == 405


def test_the_reading_is_recorded_once_per_session_and_upload(client_as, org_a, uploader):
    study = StudyFactory(organization=org_a, state=StudyState.PROCESSING)
    first, second = _job(org_a, uploader, study), _job(org_a, uploader, study)
    c = client_as(uploader)
    before = _last_event()
    for _ in range(3):  # the page asks every few seconds
        assert _ask(c, first).status_code == 200
    [event] = AuditEvent.objects.filter(pk__gt=before, action=A.UPLOAD_REPORT_VIEWED)
    assert (event.actor_id, event.organization_id, event.outcome, event.target_type, event.target_id) == (
        uploader.pk, org_a.pk, "allowed", "ingestjob", str(first.public_id))
    assert _ask(c, first, second).status_code == 200  # another upload: once more
    assert AuditEvent.objects.filter(pk__gt=before, action=A.UPLOAD_REPORT_VIEWED).count() == 2
    assert _ask(client_as(uploader), first).status_code == 200  # signed in again: a new session
    assert AuditEvent.objects.filter(pk__gt=before, action=A.UPLOAD_REPORT_VIEWED).count() == 3


def test_asking_is_not_activity(client_as, org_a, uploader):
    """The page asks on a timer: a page left open is still signed out after the idle limit."""
    job = _job(org_a, uploader, StudyFactory(organization=org_a, state=StudyState.PROCESSING))
    c = client_as(uploader)
    assert c.get(reverse("imaging:upload")).status_code == 200
    session = c.session
    earlier = time.time() - 120
    session[LAST_SEEN] = earlier
    session.save()
    assert _ask(c, job).status_code == 200
    assert c.session[LAST_SEEN] == earlier
    assert c.get(reverse("imaging:upload")).status_code == 200  # the page itself is activity
    assert c.session[LAST_SEEN] > earlier


def test_the_page_names_each_lines_upload_and_study_state(client_as, org_a, uploader):
    study = StudyFactory(organization=org_a, state=StudyState.PROCESSING, study_description="CT chest")
    job = _job(org_a, uploader, study)
    html = client_as(uploader).get(reverse("imaging:upload")).content.decode()
    assert f'data-states-url="{URL}"' in html
    assert f'data-job="{job.public_id}"' in html
    assert (f'<a href="{study.get_absolute_url()}" data-study="{study.public_id}">CT chest '
            f'(<span data-study-state="processing">Processing</span>)</a>') in html


def test_the_uploads_status_names_the_upload_the_page_asks_about(client_as, uploader, small_ct,
                                                                 django_capture_on_commit_callbacks):
    """A file uploaded through tus: its status (which the page polls while the ingest runs) gives
    the upload's id, by which the page then asks for its study's state."""
    from tests.imaging.test_bad_input import _upload

    c = client_as(uploader)
    with django_capture_on_commit_callbacks(execute=True):
        job = _upload(c, sorted(small_ct.iterdir())[0].read_bytes(), "IM1.dcm")
    status = c.get(reverse("imaging:tus_upload", kwargs={"upload_id": job.upload.public_id})).json()
    assert status["job"]["id"] == str(job.public_id)
    body = c.get(URL, {"job": status["job"]["id"]}).json()
    [study] = body["studies"]
    assert (study["id"], study["state"], study["final"]) == (status["job"]["studies"][0]["id"], "ready", True)
