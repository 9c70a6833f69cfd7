"""A new request for the original DICOM is told (in-app and by e-mail) to those who may decide it
now (``policy.can`` DECIDE_ORIGINAL_REQUEST), found by review: the share's maker, the case's creator
and its responsible clinician were told by their account alone, so that one who had left the
organization, or whose role there no longer decides, kept being told of its requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.organizations.models import Membership, Role
from apps.sharing import services
from apps.sharing.models import Notification
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

VERB = "original_request.created"


@pytest.fixture
def world(org_a):
    owner = member(org_a, Role.CLINICIAN, email="owner.dn@alpha.example")
    sharer = member(org_a, Role.CLINICIAN, email="sharer.dn@alpha.example")
    radiologist = member(org_a, Role.RADIOLOGIST, email="rad.dn@alpha.example")
    recipient = member(org_a, Role.EXTERNAL_CONSULTANT, email="rcpt.dn@alpha.example")
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)
    grant = services.grant_create(case=case, grantee=recipient, by=sharer, permissions=["view", "download_preview"],
                                  renditions=["preview"], expires_at=timezone.now() + timedelta(hours=10))
    return {"owner": owner, "sharer": sharer, "radiologist": radiologist, "recipient": recipient, "grant": grant}


def _ask(w, capture) -> set[str]:
    """Ask for the original under the share; the addresses told of it (notice and e-mail both)."""
    mail.outbox.clear()
    with capture(execute=True):
        services.original_request_create(grant=w["grant"], by=w["recipient"], reason="Need thin slices please.")
    noticed = set(Notification.objects.filter(verb=VERB).values_list("user__email", flat=True))
    mailed = {address for m in mail.outbox for address in m.to} - {w["recipient"].email}  # told it was sent
    assert mailed == noticed
    return noticed


def test_everyone_who_may_decide_is_told(world, django_capture_on_commit_callbacks):
    assert _ask(world, django_capture_on_commit_callbacks) == {
        "owner.dn@alpha.example", "sharer.dn@alpha.example", "rad.dn@alpha.example"}


def test_a_case_owner_who_left_is_no_longer_told(world, org_a, org_b, django_capture_on_commit_callbacks):
    Membership.objects.filter(user=world["owner"], organization=org_a).update(is_active=False)
    Membership.objects.create(user=world["owner"], organization=org_b, role=Role.CLINICIAN, is_active=True)
    assert _ask(world, django_capture_on_commit_callbacks) == {"sharer.dn@alpha.example", "rad.dn@alpha.example"}


def test_a_sharer_whose_role_no_longer_decides_is_no_longer_told(world, org_a, django_capture_on_commit_callbacks):
    # a coordinator sees the case and manages its shares, but downloads no original: not a decider
    Membership.objects.filter(user=world["sharer"], organization=org_a).update(role=Role.COORDINATOR)
    assert _ask(world, django_capture_on_commit_callbacks) == {"owner.dn@alpha.example", "rad.dn@alpha.example"}
