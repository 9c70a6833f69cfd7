"""Asking for the original DICOM under a share of another of one's organizations asks to switch
first, as its shared case (660913a) and the share's other pages do (found by review): a coordinator
of Alpha who also works at Beta, with Beta active, opened the request form of a share of an Alpha
case (a link from before the switch, a notice) and sent it; the request, its audit event and the
deciders' notices were made from under Beta's header. Now the form shows the switch page and a
submit from it is refused and recorded, no request made (``policy.ACTIVE_ORGANIZATION_ACTIONS``).
An outside recipient, no member of Alpha or only its invited consultant, asks as before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import OriginalRequest
from tests.factories import MembershipFactory, member, working_in

pytestmark = pytest.mark.django_db

SWITCH_NEEDED = 'data-testid="switch-needed"'
REASON = "Need the thin-slice series to measure."


def _share(case, owner, user):
    return services.grant_create(case=case, grantee=user, permissions=["view", "download_preview"],
                                 renditions=["preview"], by=owner, expires_at=timezone.now() + timedelta(hours=24))


def _client(user, organization) -> Client:
    client = Client()
    client.force_login(user)
    working_in(client, organization)
    return client


def _url(grant) -> str:
    return reverse("sharing:original_request_create", kwargs={"grant_id": grant.public_id})


def test_a_member_of_the_shares_organization_working_in_another_is_asked_to_switch_first(case, owner, org_a,
                                                                                         org_b):
    # a coordinator of Alpha (staff there, no originals by role) who also works at Beta
    morgan = member(org_b, Role.CLINICIAN, email="dr.morgan@beta.example")
    MembershipFactory(user=morgan, organization=org_a, role=Role.COORDINATOR)
    grant = _share(case, owner, morgan)
    client = _client(morgan, org_b)

    page = client.get(_url(grant))
    text = page.content.decode()
    assert page.status_code == 200 and SWITCH_NEEDED in text
    assert "Switch to Alpha Hospital" in text and f'value="{_url(grant)}"' in text
    assert 'name="reason"' not in text

    # a submit anyway (a form opened before switching, another tab) is refused and recorded
    refused = client.post(_url(grant), {"reason": REASON})
    assert refused.status_code == 403 and SWITCH_NEEDED in refused.content.decode()
    assert not OriginalRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="original_request.created").exists()
    assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a,
                                     details__wanted="request_original").exists()

    # once Alpha is the active one, the form is there and asks
    switched = client.post(reverse("organizations:switch", kwargs={"organization_id": org_a.public_id}),
                           {"next": _url(grant)})
    assert switched.status_code == 302 and switched["Location"] == _url(grant)
    assert 'name="reason"' in client.get(_url(grant)).content.decode()
    assert client.post(_url(grant), {"reason": REASON}).status_code == 302
    assert OriginalRequest.objects.filter(grant=grant, requested_by=morgan).count() == 1
    assert AuditEvent.objects.filter(action="original_request.created", actor=morgan, organization=org_a).exists()


@pytest.mark.parametrize("alpha_role", [None, Role.EXTERNAL_CONSULTANT])
def test_an_outside_recipient_asks_as_before(case, owner, org_a, org_b, alpha_role):
    """No member of Alpha, or only its invited consultant (a role that acts for it in nothing):
    nothing to switch to, whatever organization they work in."""
    outsider = member(org_b, Role.CLINICIAN, email="outsider@beta.example")
    if alpha_role is not None:
        MembershipFactory(user=outsider, organization=org_a, role=alpha_role)
    grant = _share(case, owner, outsider)
    client = _client(outsider, org_b)
    page = client.get(_url(grant))
    assert page.status_code == 200 and SWITCH_NEEDED not in page.content.decode()
    assert 'name="reason"' in page.content.decode()
    assert client.post(_url(grant), {"reason": REASON}).status_code == 302
    assert OriginalRequest.objects.filter(grant=grant, requested_by=outsider, status="pending").count() == 1
