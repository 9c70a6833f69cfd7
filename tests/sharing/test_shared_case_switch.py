"""The shared-case page of another of one's organizations asks to switch first, as the case, study,
viewer and share pages do (5e53820, 6ca7505; ``apps.organizations.switching.switch_first``): a
clinician of Alpha who also works at Beta opened a case an Alpha colleague shared with them under
Beta's header, and the opening went to Alpha's trail from a page that said Beta. An outside
recipient (no membership in the case's organization) sees it as before: there is nothing to
switch to."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import services
from tests.factories import CaseFactory, MembershipFactory, member, working_in

pytestmark = pytest.mark.django_db

SWITCH_NEEDED = 'data-testid="switch-needed"'
TITLE = "Left lung lesion follow-up"


@pytest.fixture
def alpha_case(org_a, owner):
    return CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner, title=TITLE)


def _share(case, owner, user):
    return services.grant_create(case=case, grantee=user, permissions=["view"], by=owner,
                                 expires_at=timezone.now() + timedelta(hours=24))


def _client(user, organization) -> Client:
    client = Client()
    client.force_login(user)
    working_in(client, organization)
    return client


def _url(case) -> str:
    return reverse("sharing:shared_case", kwargs={"case_id": case.public_id})


def test_a_case_shared_by_another_of_their_organizations_asks_to_switch_first(alpha_case, owner, org_a, org_b):
    morgan = member(org_b, Role.CLINICIAN, email="dr.morgan@beta.example")
    MembershipFactory(user=morgan, organization=org_a, role=Role.CLINICIAN)
    grant = _share(alpha_case, owner, morgan)
    client = _client(morgan, org_b)
    page = client.get(_url(alpha_case))
    text = page.content.decode()
    assert page.status_code == 200 and SWITCH_NEEDED in text
    assert "Switch to Alpha Hospital" in text and f'value="{_url(alpha_case)}"' in text
    assert TITLE not in text  # nothing of the case under Beta's header
    # and nothing read of it is counted or recorded: no opening
    grant.refresh_from_db()
    assert grant.open_count == 0 and not AuditEvent.objects.filter(action="grant.opened").exists()
    # the switch continues to the shared case, now in Alpha
    switched = client.post(reverse("organizations:switch", kwargs={"organization_id": org_a.public_id}),
                           {"next": _url(alpha_case)})
    assert switched.status_code == 302 and switched["Location"] == _url(alpha_case)
    opened = client.get(_url(alpha_case))
    assert opened.status_code == 200 and SWITCH_NEEDED not in opened.content.decode()
    assert TITLE in opened.content.decode()
    assert AuditEvent.objects.filter(action="grant.opened", actor=morgan, organization=org_a).count() == 1
    # the page only reads: a POST is not served (nor would the switch page take one)
    assert _client(morgan, org_b).post(_url(alpha_case)).status_code == 405


def test_an_outside_recipient_sees_the_shared_case_as_before(alpha_case, owner, org_b):
    outsider = member(org_b, Role.CLINICIAN, email="outsider@beta.example")
    _share(alpha_case, owner, outsider)
    page = _client(outsider, org_b).get(_url(alpha_case))
    text = page.content.decode()
    assert page.status_code == 200 and SWITCH_NEEDED not in text and TITLE in text


def test_a_recipient_working_in_the_cases_organization_is_not_asked(alpha_case, owner, org_a, org_b):
    morgan = member(org_b, Role.CLINICIAN, email="dr.morgan@beta.example")
    MembershipFactory(user=morgan, organization=org_a, role=Role.CLINICIAN)
    _share(alpha_case, owner, morgan)
    page = _client(morgan, org_a).get(_url(alpha_case))
    assert page.status_code == 200 and SWITCH_NEEDED not in page.content.decode()
    assert TITLE in page.content.decode()
