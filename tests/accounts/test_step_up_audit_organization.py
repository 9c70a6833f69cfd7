"""A step-up refusal (``auth.step_up_required``) is recorded in the audit trail of the one
organization the request acts in, never in each of the person's organizations as their sign-ins
are: its path names the object, and someone in Alpha and Beta asked for a code on a Beta case's
share page put the Beta case's id into Alpha's audit page, CSV and FHIR exports (found by a
reviewer)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.accounts.conftest import enrol, stale_second_factor_client, totp_code
from tests.factories import CaseFactory, GrantFactory, MembershipFactory, member, working_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(settings, org_a, org_b):
    settings.LIGHTBOX_MFA_ENFORCED = True
    for org in (org_a, org_b):  # no enrolment asked at sign-in: the page's own step-up is what is tested
        org.mfa_required_roles = []
        org.save()
    return settings


@pytest.fixture
def both(org_a, org_b):
    """A clinician of Beta who is also a clinician of Alpha."""
    person = member(org_b, Role.CLINICIAN, email="dr.both@beta.example")
    MembershipFactory(user=person, organization=org_a, role=Role.CLINICIAN)
    return person


def _mentions(org, text: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.objects.filter(organization=org) if text in json.dumps(e.details)]


def _csv(org, admin) -> str:
    client = Client()
    client.force_login(admin)
    # an export asks for a recent second factor
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(enrol(admin)), "next": "/"}).status_code == 302
    working_in(client, org)
    response = client.post(reverse("audit:export_csv"))
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def test_a_step_up_on_a_beta_case_is_in_betas_trail_only(setting, org_a, org_b, both, admin_a):
    case = CaseFactory(organization=org_b, created_by=both, responsible_clinician=both)
    client, _device = stale_second_factor_client(both)
    working_in(client, org_b)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:step_up"))
    # Beta's trail has the refusal, with the page it was asked on
    event = AuditEvent.objects.get(action="auth.step_up_required", actor=both)
    assert event.organization_id == org_b.pk and event.details == {"path": url} and event.outcome == "denied"
    # Alpha's has nothing of it: neither the event nor the Beta case's id, on the page or in its export
    assert not AuditEvent.objects.filter(organization=org_a, action="auth.step_up_required").exists()
    assert _mentions(org_a, str(case.public_id)) == []
    assert str(case.public_id) not in _csv(org_a, admin_a)


def test_the_api_records_a_step_up_in_the_shares_organization(setting, org_a, org_b, both):
    """The API has no switch: extending a Beta share while Alpha is the active organization is
    refused in Beta's trail, with its path."""
    case = CaseFactory(organization=org_b, created_by=both, responsible_clinician=both)
    grant = GrantFactory(organization=org_b, case=case, created_by=both)
    client, _device = stale_second_factor_client(both)
    working_in(client, org_a)
    url = f"/api/v1/grants/{grant.public_id}/extend/"
    response = client.post(url, data="{}", content_type="application/json")
    assert response.status_code == 403 and response.json()["detail"] == "step_up_required"
    event = AuditEvent.objects.get(action="auth.step_up_required", actor=both)
    assert event.organization_id == org_b.pk and event.details == {"path": url}
    assert _mentions(org_a, str(grant.public_id)) == []


def test_a_page_about_no_object_is_recorded_in_the_active_organization(setting, org_a, org_b):
    """The invitations page (no object in its address): the active organization's trail, not each one's."""
    admin = member(org_b, Role.ORG_ADMIN, email="admin.both@beta.example")
    MembershipFactory(user=admin, organization=org_a, role=Role.ORG_ADMIN)
    client, _device = stale_second_factor_client(admin)
    working_in(client, org_b)
    assert client.get(reverse("accounts:invitation_send")).status_code == 302
    event = AuditEvent.objects.get(action="auth.step_up_required", actor=admin)
    assert event.organization_id == org_b.pk and event.details == {"path": reverse("accounts:invitation_send")}
