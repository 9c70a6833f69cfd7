"""A download asks no switch of organization: an original's download asked for a code is recorded
in the study's organization's audit trail, not the active organization's nor each of the
person's (its path names the study; found by a reviewer, apps.accounts.mfa._record_step_up_required)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.accounts.conftest import stale_second_factor_client
from tests.factories import MembershipFactory, member, working_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mfa_enforced(settings):
    settings.LIGHTBOX_MFA_ENFORCED = True


def test_an_original_download_asked_for_a_code_is_in_the_studys_organizations_trail(ct_study, org_b):
    person = member(ct_study.organization, Role.RADIOLOGIST, email="dr.both@alpha.example")
    MembershipFactory(user=person, organization=org_b, role=Role.RADIOLOGIST)
    client, _device = stale_second_factor_client(person)
    working_in(client, org_b)  # working in Beta, downloading Alpha's study
    url = reverse("renditions:study_download", kwargs={"study_id": ct_study.public_id}) + "?rendition=original"
    response = client.get(url)
    assert response.status_code == 302 and reverse("accounts:step_up") in response["Location"]
    event = AuditEvent.objects.get(action="auth.step_up_required", actor=person)
    assert event.organization_id == ct_study.organization_id and event.details["path"] == url.split("?")[0]
    assert not [e for e in AuditEvent.objects.filter(organization=org_b)
                if str(ct_study.public_id) in json.dumps(e.details)]
