"""Deleting a study from its page: who may (radiologists and org admins, never through a grant),
what is removed (rows, blobs no other row uses, grants left naming nothing), that it is audited,
that a GET only asks, and that a study an ingest is still filling is refused with a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.imaging.models import Blob, IngestJob, Instance, JobState, Series, Study
from apps.imaging.services import StudyBusy, ingest_job_create, ingest_job_run, study_delete
from apps.organizations.models import Role
from apps.sharing import services as sharing
from apps.sharing.models import Grant
from tests.factories import member

pytestmark = pytest.mark.django_db


def _url(study, name="imaging:study_delete"):
    return reverse(name, kwargs={"study_id": study.public_id})


@pytest.mark.parametrize("role", [Role.RADIOLOGIST, Role.ORG_ADMIN])
def test_allowed_role_deletes_rows_blobs_and_is_audited(client_as, org_a, ingested, role):
    user = member(org_a, role)
    client = client_as(user)
    blobs = list(Blob.objects.all())
    assert len(blobs) == 6 and all(default_storage.exists(b.storage_name) for b in blobs)
    page = client.get(ingested.get_absolute_url())
    assert 'data-testid="delete-study"' in page.content.decode()
    r = client.post(_url(ingested))
    assert r.status_code == 302 and r["Location"] == reverse("cases:case_detail",
                                                              kwargs={"case_id": ingested.case.public_id})
    assert not Study.objects.exists() and not Series.objects.exists() and not Instance.objects.exists()
    assert not Blob.objects.exists()
    assert not [b.storage_name for b in blobs if default_storage.exists(b.storage_name)]
    event = AuditEvent.objects.get(action="imaging.study_deleted")
    assert (event.actor_id, event.outcome, event.target_id) == (user.pk, "allowed", str(ingested.public_id))
    assert event.details["blobs_removed"] == 6
    followed = client.get(r["Location"])
    assert "The study was deleted." in followed.content.decode()


def test_confirmation_page_states_what_goes_and_get_deletes_nothing(client_as, org_a, ingested):
    rad = member(org_a, Role.RADIOLOGIST)
    r = client_as(rad).get(_url(ingested))
    assert r.status_code == 200
    html = r.content.decode()
    assert "Images as received: 6 (series: 1;" in html and "cannot be undone" in html
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert Study.objects.filter(pk=ingested.pk).exists() and Blob.objects.count() == 6
    assert not AuditEvent.objects.filter(action="imaging.study_deleted").exists()


def test_post_without_csrf_token_is_refused(org_a, ingested):
    from django.test import Client

    rad = member(org_a, Role.RADIOLOGIST)
    client = Client(enforce_csrf_checks=True)
    client.force_login(rad)
    assert client.post(_url(ingested)).status_code == 403
    assert Study.objects.filter(pk=ingested.pk).exists()


@pytest.mark.parametrize(("who", "status"), [
    ("clinician", 403), ("coordinator", 403), ("consultant_with_grant", 403), ("consultant", 404),
    ("other_org_radiologist", 404), ("other_org_admin", 404)])
def test_others_cannot_delete(client_as, org_a, org_b, ingested, who, status):
    if who.startswith("other_org"):
        user = member(org_b, Role.RADIOLOGIST if who.endswith("radiologist") else Role.ORG_ADMIN)
    elif who.startswith("consultant"):
        user = member(org_a, Role.EXTERNAL_CONSULTANT)
        if who == "consultant_with_grant":
            owner = member(org_a, Role.CLINICIAN)
            sharing.grant_create(case=ingested.case, grantee=user, by=owner,
                                 permissions=["view", "download_preview", "download_original", "reshare"],
                                 expires_at=timezone.now() + timedelta(hours=2))
    else:
        user = member(org_a, Role.CLINICIAN if who == "clinician" else Role.COORDINATOR)
    client = client_as(user)
    if status == 403:
        assert 'data-testid="delete-study"' not in client.get(ingested.get_absolute_url()).content.decode()
    assert client.get(_url(ingested)).status_code == status
    assert client.post(_url(ingested)).status_code == status
    assert Study.objects.filter(pk=ingested.pk).exists() and Blob.objects.count() == 6
    assert not AuditEvent.objects.filter(action="imaging.study_deleted").exists()
    if status == 403:
        assert AuditEvent.objects.filter(action="access.denied", actor=user,
                                         details__wanted="delete_study").exists()


def test_service_asks_the_policy(org_a, ingested):
    with pytest.raises(PermissionDenied):
        study_delete(study=ingested, by=member(org_a, Role.CLINICIAN))
    assert Study.objects.filter(pk=ingested.pk).exists()


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING])
def test_refused_while_an_ingest_of_it_runs(client_as, org_a, ingested, state):
    rad = member(org_a, Role.RADIOLOGIST)
    job = ingest_job_create(organization=org_a, source_path="/nonexistent", case=ingested.case, enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(state=state)
    job.studies.add(ingested)
    with pytest.raises(StudyBusy):
        study_delete(study=ingested, by=rad)
    r = client_as(rad).post(_url(ingested), follow=True)
    assert r.status_code == 200
    assert "still being added" in r.content.decode()
    assert Study.objects.filter(pk=ingested.pk).exists() and Blob.objects.count() == 6
    assert not AuditEvent.objects.filter(action="imaging.study_deleted").exists()


def test_blobs_shared_with_another_study_stay(org_a, org_b, small_ct, ingested):
    job = ingest_job_create(organization=org_b, source_path=str(small_ct), enqueue=False)
    ingest_job_run(job_id=job.pk)
    assert Blob.objects.count() == 6  # the same bytes: stored once
    assert study_delete(study=ingested, by=member(org_a, Role.RADIOLOGIST)) == 0
    assert all(default_storage.exists(b.storage_name) for b in Blob.objects.all())
    assert Instance.objects.filter(organization=org_b).count() == 6


def test_a_grant_naming_only_this_study_is_revoked(org_a, ingested):
    """Left naming no study, a study-scoped grant would cover the whole case."""
    owner = member(org_a, Role.CLINICIAN)
    other = Study.objects.create(organization=org_a, case=ingested.case, study_instance_uid="1.2.3.999")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    expires = timezone.now() + timedelta(hours=2)
    only = sharing.grant_create(case=ingested.case, grantee=consultant, by=owner, permissions=["view"],
                                expires_at=expires, studies=[ingested])
    both = sharing.grant_create(case=ingested.case, grantee=consultant, by=owner, permissions=["view"],
                                expires_at=expires, studies=[ingested, other])
    study_delete(study=ingested, by=member(org_a, Role.RADIOLOGIST))
    assert Grant.objects.get(pk=only.pk).revoked_at is not None
    assert Grant.objects.get(pk=both.pk).revoked_at is None
    assert list(Grant.objects.get(pk=both.pk).studies.all()) == [other]
    # the narrowed share is named in the deletion's record
    details = AuditEvent.objects.get(action="imaging.study_deleted").details
    assert details["grants_revoked"] == 1 and details["grants_narrowed"] == [str(both.public_id)]


def test_deleting_needs_a_recent_second_factor(settings, org_a, ingested):
    """A deletion cannot be undone: a radiologist whose second factor is older than the step-up
    window is sent to enter a code first; a POST without it deletes nothing."""
    from tests.accounts.conftest import stale_second_factor_client, totp_code

    settings.LIGHTBOX_MFA_ENFORCED = True
    client, device = stale_second_factor_client(member(org_a, Role.RADIOLOGIST))
    response = client.post(_url(ingested))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:step_up"))
    assert Study.objects.filter(pk=ingested.pk).exists()
    back = client.post(reverse("accounts:step_up"), {"code": totp_code(device, ahead=1), "next": _url(ingested)})
    assert back["Location"] == _url(ingested)
    assert client.post(_url(ingested)).status_code == 302
    assert not Study.objects.filter(pk=ingested.pk).exists()


def test_a_study_deleted_meanwhile_is_a_404_not_a_server_error(client_as, org_a, ingested, monkeypatch):
    """Two deletions of one study (a double click, two admins): the second finds the row gone once
    it holds the lock, and answers 404, with nothing more recorded."""
    from apps.imaging import views

    rad, other = member(org_a, Role.RADIOLOGIST), member(org_a, Role.ORG_ADMIN)
    fetched = views.selectors.study_get

    def fetch_then_lose_the_race(**kwargs):
        study = fetched(**kwargs)
        study_delete(study=Study.objects.get(pk=study.pk), by=other)  # the other request wins
        return study

    monkeypatch.setattr(views.selectors, "study_get", fetch_then_lose_the_race)
    client = client_as(rad)
    client.raise_request_exception = False
    assert client.post(_url(ingested)).status_code == 404
    assert AuditEvent.objects.filter(action="imaging.study_deleted").count() == 1
