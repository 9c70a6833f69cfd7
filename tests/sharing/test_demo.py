from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.sharing.models import Grant, OriginalRequest

pytestmark = pytest.mark.django_db


def test_seed_demo_shares_show_states_and_are_idempotent():
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    consultant = User.objects.get(email="consultant@northwind.example")
    # on the chest CT case (the telehealth share with a pending original request is on another)
    grants = list(Grant.objects.filter(grantee=consultant, case__title="Chest CT - second opinion"))
    assert sorted(g.state() for g in grants) == ["active", "expired_unused"]
    live = next(g for g in grants if g.state() == "active")
    assert live.use_case == "second_opinion" and live.links.count() == 1
    clinician = Client()
    clinician.force_login(User.objects.get(email="clinician@northwind.example"))
    page = clinician.get(reverse("sharing:my_shares")).content.decode()
    assert "state-active" in page and "state-expired_unused" in page
    recipient = Client()
    recipient.force_login(consultant)
    received = recipient.get(reverse("sharing:shared_with_me")).content.decode()
    assert live.case.title in received
    assert recipient.get(reverse("sharing:shared_case", kwargs={"case_id": live.case.public_id})).status_code == 200


def test_seed_demo_gives_the_demo_patient_a_patient_education_share_on_the_portal():
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    patient = User.objects.get(email="patient@northwind.example")
    [grant] = Grant.objects.filter(grantee=patient)
    assert grant.use_case == "patient_education" and grant.renditions == ["education"]
    assert grant.links.count() == 1
    client = Client()
    client.force_login(patient)
    page = client.get(reverse("education:portal")).content.decode()
    assert 'data-testid="education-share"' in page and 'data-testid="portal-empty"' not in page
    # the education copy is made after the seed commits (renditions task): ready or being prepared
    assert 'data-testid="education-download"' in page or 'data-testid="education-preparing"' in page


def _row_of(page: str, href: str) -> str:
    """The table row of "Shared with me" whose case link is ``href``."""
    [row] = [r for r in page.split("<tr") if f'href="{href}"' in r]
    return row.split("</tr>")[0]


def test_seed_demo_shows_a_pending_original_request_to_the_consultant_and_to_who_decides():
    call_command("seed_demo", stdout=io.StringIO())
    consultant = User.objects.get(email="consultant@northwind.example")
    clinician = User.objects.get(email="clinician@northwind.example")
    [req] = OriginalRequest.objects.filter(requested_by=consultant)
    grant = req.grant
    assert req.status == "pending" and len(req.reason) >= 10
    # made through the service: audited, and the deciders were told
    from apps.audit.models import AuditEvent
    from apps.sharing.models import Notification

    assert AuditEvent.objects.filter(action="original_request.created").count() == 1
    assert Notification.objects.filter(user=clinician, verb="original_request.created").count() == 1
    # a live preview-only share from the clinician
    assert grant.is_live() and grant.created_by == clinician and grant.use_case == "telehealth"
    assert grant.renditions == ["preview"] and "download_original" not in grant.permissions

    counts = (Grant.objects.count(), OriginalRequest.objects.count(), Notification.objects.count())
    call_command("seed_demo", stdout=io.StringIO())
    assert (Grant.objects.count(), OriginalRequest.objects.count(), Notification.objects.count()) == counts

    recipient = Client()
    recipient.force_login(consultant)
    case_url = reverse("sharing:shared_case", kwargs={"case_id": grant.case.public_id})
    row = _row_of(recipient.get(reverse("sharing:shared_with_me")).content.decode(), case_url)
    assert 'data-testid="original-request-pending"' in row and 'data-testid="request-original"' not in row
    shared_case = recipient.get(case_url).content.decode()
    assert 'data-testid="original-request-pending"' in shared_case
    assert 'data-testid="request-original"' not in shared_case

    decider = Client()
    decider.force_login(clinician)
    decide_url = reverse("sharing:original_request_decide", kwargs={"originalrequest_id": req.public_id})
    assert f'href="{decide_url}"' in decider.get(reverse("sharing:my_shares")).content.decode()
    assert decider.get(decide_url).status_code == 200


def test_seed_demo_telehealth_share_reaches_the_brain_mr_study_as_previews(django_capture_on_commit_callbacks):
    """The consultant's preview-only telehealth share (view only), with its pending request for the
    original, is on a case that has a study: they see it and open it in the viewer as previews,
    never the original; the policy refuses a second request only because the first one waits."""
    from apps.sharing import policy
    from apps.sharing.policy import Action, OriginalRefusal

    with django_capture_on_commit_callbacks(execute=True):  # the renditions, as eager Celery makes them
        call_command("seed_demo", stdout=io.StringIO())
    consultant = User.objects.get(email="consultant@northwind.example")
    [req] = OriginalRequest.objects.filter(requested_by=consultant)
    grant = req.grant
    [study] = grant.case.studies.all()
    assert study.is_ready and study.modality_list == ["MR"]
    assert policy.can(consultant, Action.VIEW_IMAGES, study)
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, study)
    assert policy.original_request_refusal(consultant, grant) == OriginalRefusal.PENDING

    recipient = Client()
    recipient.force_login(consultant)
    page = recipient.get(reverse("sharing:shared_case", kwargs={"case_id": grant.case.public_id})).content.decode()
    viewer_url = reverse("viewer:viewer", kwargs={"study_id": study.public_id})
    assert f'href="{viewer_url}"' in page and 'data-testid="no-studies"' not in page
    assert 'data-testid="download-original"' not in page
    viewer = recipient.get(viewer_url)
    assert viewer.status_code == 200 and "Previews only" in viewer.content.decode()
    instance = study.instances.order_by("pk").first()
    frame = reverse("viewer:frame", kwargs={"instance_id": instance.public_id})
    preview = recipient.get(f"{frame}?quality=preview")
    assert preview.status_code == 200 and preview["X-Lightbox-Frame"] == "preview"
    assert recipient.get(f"{frame}?quality=diagnostic").status_code == 403
