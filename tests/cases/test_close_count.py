"""Closing a case tells how many of the shares its confirmation listed it ended (QA: the
confirmation listed one person and the message said "Access given to others ended: 2", counting
the share's link too)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.cases import services
from apps.organizations.models import Role
from apps.sharing.models import Grant
from apps.sharing.services import grant_create, share_link_create
from apps.sharing.usecases import TEMPLATES, UseCase
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared_case(org_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    second = TEMPLATES[UseCase.SECOND_OPINION]
    grant = grant_create(case=case, grantee=consultant, permissions=second.permissions, renditions=second.renditions,
                         expires_at=timezone.now() + timedelta(hours=48), by=clinician_a,
                         use_case=UseCase.SECOND_OPINION)
    share_link_create(grant=grant, by=clinician_a)  # the share's link: not a second access
    # a share that expired already: closing ends nothing of it, and the confirmation lists none
    old = grant_create(case=case, grantee=member(org_a, Role.EXTERNAL_CONSULTANT), permissions=["view"],
                       expires_at=timezone.now() + timedelta(hours=1), by=clinician_a)
    Grant.objects.filter(pk=old.pk).update(starts_at=timezone.now() - timedelta(hours=3),
                                           expires_at=timezone.now() - timedelta(hours=1))
    return case


def test_the_close_message_counts_the_shares_the_confirmation_listed(shared_case, clinician_a, client_as):
    client = client_as(clinician_a)
    confirmation = client.get(f"/cases/{shared_case.public_id}/close/")
    listed = re.search(r'data-testid="close-ends">(.*?)</ul>', confirmation.content.decode(), re.S).group(1)
    assert listed.count("<li>") == 1

    response = client.post(f"/cases/{shared_case.public_id}/close/", follow=True)

    assert "Access given to others ended: 1." in response.content.decode()


def test_case_close_returns_the_shares_it_ended(shared_case, clinician_a):
    assert services.case_close(case=shared_case, by=clinician_a) == 1
    assert not Grant.objects.filter(case=shared_case, revoked_at__isnull=True).exists()  # all revoked still
