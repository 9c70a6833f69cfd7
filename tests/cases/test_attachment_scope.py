"""A case's reports and attachments are tied to none of its studies: a share that names some
studies of the case gives none of them (they may be about the others), while a share of the
whole case and the organization's staff keep them, on the case page and to download.

Before, a grant naming one study allowed VIEW_IMAGES on every case-level object of the case
(apps.sharing.policy), so its recipient saw the case's every report listed on the case page and
downloaded it, including the report of a study the share left out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.policy import Action
from apps.sharing.services import grant_create
from tests.factories import AttachmentFactory, CaseFactory, StudyFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(org_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    shared = StudyFactory(organization=org_a, case=case, study_description="Shared chest CT")
    other = StudyFactory(organization=org_a, case=case, study_description="Unshared PET")
    report = AttachmentFactory(organization=org_a, case=case, filename="pet-report.pdf")
    return case, shared, other, report


def _share(case, by, *, studies=()):
    grantee = member(case.organization, Role.EXTERNAL_CONSULTANT)
    grant_create(case=case, grantee=grantee, permissions=["view"], by=by, studies=list(studies),
                 expires_at=timezone.now() + timedelta(days=2))
    return grantee


def _download(attachment):
    return reverse("cases:attachment_download", kwargs={"attachment_id": attachment.public_id})


def test_a_study_scoped_grantee_gets_no_attachment_of_the_case(world, clinician_a, client_as):
    case, shared, other, report = world
    grantee = _share(case, clinician_a, studies=[shared])
    client = client_as(grantee)

    assert not policy.can(grantee, Action.VIEW_IMAGES, report)
    # the case page and its named study stay theirs, the other study does not
    assert policy.can(grantee, Action.VIEW_IMAGES, case) and policy.can(grantee, Action.VIEW_IMAGES, shared)
    assert client.get(reverse("imaging:study_detail", kwargs={"study_id": other.public_id})).status_code == 404

    response = client.get(case.get_absolute_url())
    assert response.status_code == 200
    body = response.content.decode()
    assert "Shared chest CT" in body
    assert "pet-report.pdf" not in body and _download(report) not in body
    assert 'data-testid="attachment"' not in body

    # not found, as a study the share leaves out; the refusal is recorded, nothing downloaded
    assert client.get(_download(report)).status_code == 404
    assert AuditEvent.objects.filter(action="access.denied", actor=grantee).exists()
    assert not AuditEvent.objects.filter(action="attachment.downloaded").exists()


@pytest.mark.parametrize("who", ["whole_case_grantee", "staff"])
def test_a_whole_case_grantee_and_staff_keep_the_case_attachments(world, clinician_a, client_as, who):
    case, _shared, _other, report = world
    user = _share(case, clinician_a) if who == "whole_case_grantee" else clinician_a
    client = client_as(user)

    assert policy.can(user, Action.VIEW_IMAGES, report)
    body = client.get(case.get_absolute_url()).content.decode()
    assert "pet-report.pdf" in body and _download(report) in body
    response = client.get(_download(report))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF")
