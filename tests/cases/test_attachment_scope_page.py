"""The case page of a share that names some studies of a case says that the case's reports and
attachments are not part of what was shared (not "none yet"), and offers no Attach form: what
its holder attached would not be theirs to see (tests/cases/test_attachment_scope.py).

Before, such a recipient read "No report or attachment yet." though the case held a report,
and was offered the Attach form: their upload was stored, "Document attached." shown, and it
then was missing from their list. Staff and a share of the whole case keep both."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cases import services
from apps.cases.models import Attachment
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.policy import Action
from apps.sharing.services import grant_create
from tests.factories import AttachmentFactory, CaseFactory, StudyFactory, member

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%test\n"


@pytest.fixture
def world(org_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    shared = StudyFactory(organization=org_a, case=case, study_description="Shared chest CT")
    StudyFactory(organization=org_a, case=case, study_description="Unshared PET")
    AttachmentFactory(organization=org_a, case=case, filename="pet-report.pdf")
    return case, shared


def _share(case, by, *, studies=()):
    grantee = member(case.organization, Role.EXTERNAL_CONSULTANT)
    grant_create(case=case, grantee=grantee, permissions=["view"], by=by, studies=list(studies),
                 expires_at=timezone.now() + timedelta(days=2))
    return grantee


def _attach(client, case):
    return client.post(reverse("cases:attachment_add", kwargs={"case_id": case.public_id}),
                       {"kind": "report", "file": SimpleUploadedFile("mine.pdf", PDF)})


def test_a_study_scoped_grantee_is_told_the_documents_were_not_shared_and_offered_no_attach(
        world, clinician_a, client_as):
    case, shared = world
    grantee = _share(case, clinician_a, studies=[shared])
    client = client_as(grantee)

    assert not policy.can(grantee, Action.VIEW_DOCUMENTS, case)
    assert not policy.can(grantee, Action.ATTACH_DOCUMENT, case)
    assert policy.can(grantee, Action.ADD_NOTE, case)  # notes stay theirs to write

    body = client.get(case.get_absolute_url()).content.decode()
    assert 'data-testid="attachments-not-shared"' in body
    assert "not part of what was shared with you" in body
    assert "No report or attachment yet." not in body
    assert "attachment-form" not in body  # no Attach form
    assert "note-form" in body

    # posting anyway is refused and recorded; nothing is stored
    assert _attach(client, case).status_code == 403
    with pytest.raises(PermissionDenied):
        services.attachment_add(case=case, by=grantee, fileobj=SimpleUploadedFile("x.pdf", PDF), filename="x.pdf")
    assert Attachment.objects.count() == 1
    assert AuditEvent.objects.filter(action="access.denied", actor=grantee,
                                     details__wanted="attach_document").exists()


@pytest.mark.parametrize("who", ["whole_case_grantee", "staff"])
def test_whole_case_grantee_and_staff_see_the_documents_and_what_they_attach(world, clinician_a, client_as, who):
    case, _shared = world
    user = _share(case, clinician_a) if who == "whole_case_grantee" else clinician_a
    client = client_as(user)

    assert policy.can(user, Action.VIEW_DOCUMENTS, case) and policy.can(user, Action.ATTACH_DOCUMENT, case)
    body = client.get(case.get_absolute_url()).content.decode()
    assert "pet-report.pdf" in body and "attachment-form" in body
    assert 'data-testid="attachments-not-shared"' not in body

    assert _attach(client, case).status_code == 302
    assert "mine.pdf" in client.get(case.get_absolute_url()).content.decode()


def test_a_case_without_documents_still_says_none_yet_to_whoever_may_see_them(org_a, clinician_a, client_as):
    case = CaseFactory(organization=org_a, created_by=clinician_a)
    body = client_as(clinician_a).get(case.get_absolute_url()).content.decode()
    assert "No report or attachment yet." in body
    assert 'data-testid="attachments-not-shared"' not in body


def test_documents_are_decided_on_a_case_only(org_a, clinician_a):
    closed = CaseFactory(organization=org_a, created_by=clinician_a, status="closed")
    assert not policy.can(clinician_a, Action.ATTACH_DOCUMENT, closed)  # as ADD_NOTE: an open case
    assert policy.can(clinician_a, Action.VIEW_DOCUMENTS, closed)
    assert not policy.can(clinician_a, Action.VIEW_DOCUMENTS, org_a)
    assert not policy.can(clinician_a, Action.ATTACH_DOCUMENT, org_a)
