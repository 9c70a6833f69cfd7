"""Someone in two organizations works in one at a time (the header's switcher). Found by QA: with
Beta active, a radiologist of Alpha saw Alpha's notices and requests on "Shared with me", opened
and approved one of Alpha's requests for the original DICOM, and then saw Alpha's shares with
Revoke and Extend on "My shares", all under Beta's header. Now the pages of the active
organization list its rows only (the others' are counted, with the switch to them); a link to
another organization's request or share asks to switch first; deciding, revoking, extending and
renewing there are refused until it is the active one. A share from an organization the person
is not a member of is still theirs to see, labelled with it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import Grant, OriginalRequest, OriginalRequestStatus
from tests.factories import MembershipFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def morgan(org_a, org_b):
    """A radiologist of Alpha (who decides its requests) and an external consultant of Beta."""
    user = member(org_b, Role.EXTERNAL_CONSULTANT, email="dr.morgan@beta.example")
    MembershipFactory(user=user, organization=org_a, role=Role.RADIOLOGIST)
    return user


def _working_in(user, organization) -> Client:
    client = Client()
    client.force_login(user)
    response = client.post(reverse("organizations:switch", kwargs={"organization_id": organization.public_id}))
    assert response.status_code == 302
    return client


@pytest.fixture
def pending(owner, case, consultant):
    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=24))
    return services.original_request_create(grant=grant, by=consultant, reason="Need the full-resolution series.")


def _decide_url(req) -> str:
    return reverse("sharing:original_request_decide", kwargs={"originalrequest_id": req.public_id})


def test_another_organizations_request_asks_to_switch_and_is_decided_only_after(morgan, pending, org_a, org_b):
    client = _working_in(morgan, org_b)
    page = client.get(_decide_url(pending))
    text = page.content.decode()
    assert page.status_code == 200 and 'data-testid="switch-needed"' in text
    assert "Need the full-resolution series." not in text and "consultant@alpha.example" not in text
    assert "Switch to Alpha Hospital" in text and f'value="{_decide_url(pending)}"' in text
    # a decision sent anyway (a form opened before switching, another tab) is refused and recorded
    refused = client.post(_decide_url(pending), {"decision": "approve", "hours": 12})
    assert refused.status_code == 403 and 'data-testid="switch-needed"' in refused.content.decode()
    pending.refresh_from_db()
    assert pending.status == OriginalRequestStatus.PENDING
    assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a,
                                     details__wanted="decide_original_request").exists()
    # the switch continues to the request, now in Alpha
    switched = client.post(reverse("organizations:switch", kwargs={"organization_id": org_a.public_id}),
                           {"next": _decide_url(pending)})
    assert switched.status_code == 302 and switched["Location"] == _decide_url(pending)
    text = client.get(_decide_url(pending)).content.decode()
    assert "Need the full-resolution series." in text and 'name="decision"' in text
    assert client.post(_decide_url(pending), {"decision": "approve", "hours": 12}).status_code == 302
    pending.refresh_from_db()
    assert pending.status == OriginalRequestStatus.APPROVED
    assert AuditEvent.objects.filter(action="original_request.approved", organization=org_a).exists()


def test_shared_with_me_and_my_shares_keep_to_the_active_organization(morgan, pending, case, org_a, org_b):
    made = services.grant_create(case=case, grantee=None, grantee_email="someone@elsewhere.example",
                                 permissions=["view"], by=morgan, expires_at=timezone.now() + timedelta(hours=24))
    to_morgan = services.grant_create(case=case, grantee=morgan, permissions=["view"], by=case.created_by,
                                      expires_at=timezone.now() + timedelta(hours=24))
    notice = "A recipient asked for the original DICOM of a shared case."
    in_beta = _working_in(morgan, org_b)
    received = in_beta.get(reverse("sharing:shared_with_me")).content.decode()
    assert notice not in received and _decide_url(pending) not in received
    assert case.title not in received and str(to_morgan.public_id) not in received
    assert 'data-testid="elsewhere-alpha"' in received and "Switch to Alpha Hospital" in received
    assert "1 share to you" in received and "1 notification" in received
    mine = in_beta.get(reverse("sharing:my_shares")).content.decode()
    assert str(made.public_id) not in mine and _decide_url(pending) not in mine
    assert reverse("sharing:grant_revoke", kwargs={"grant_id": made.public_id}) not in mine
    assert "1 share you made" in mine and "1 request for the original DICOM to decide" in mine
    # in Alpha, all of it, and nothing "elsewhere" (Beta has nothing of theirs)
    in_alpha = _working_in(morgan, org_a)
    received = in_alpha.get(reverse("sharing:shared_with_me")).content.decode()
    assert notice in received and case.title in received and 'data-testid="elsewhere"' not in received
    mine = in_alpha.get(reverse("sharing:my_shares")).content.decode()
    assert str(made.public_id) in mine and _decide_url(pending) in mine
    assert reverse("sharing:grant_revoke", kwargs={"grant_id": made.public_id}) in mine


def test_a_share_from_an_organization_they_are_not_a_member_of_is_listed_labelled(case, org_a, org_b):
    outsider = member(org_b, Role.CLINICIAN, email="outsider@beta.example")
    grant = services.grant_create(case=case, grantee=outsider, permissions=["view"], by=case.created_by,
                                  expires_at=timezone.now() + timedelta(hours=24))
    text = _working_in(outsider, org_b).get(reverse("sharing:shared_with_me")).content.decode()
    assert case.title in text and "Alpha Hospital" in text and 'data-testid="elsewhere"' not in text
    assert grant.organization_id == org_a.pk


def test_revoke_extend_and_renew_of_another_organizations_share_wait_for_the_switch(morgan, case, org_a, org_b):
    grant = services.grant_create(case=case, grantee=None, grantee_email="someone@elsewhere.example",
                                  permissions=["view"], by=morgan, expires_at=timezone.now() + timedelta(hours=24))
    client = _working_in(morgan, org_b)
    kwargs = {"grant_id": grant.public_id}
    for name in ("grant_revoke", "grant_renew"):
        response = client.post(reverse(f"sharing:{name}", kwargs=kwargs))
        assert response.status_code == 403 and 'data-testid="switch-needed"' in response.content.decode(), name
        assert f'value="{reverse("sharing:my_shares")}#share-{grant.public_id}"' in response.content.decode()
    extend = client.get(reverse("sharing:grant_extend", kwargs=kwargs))
    assert extend.status_code == 200 and 'data-testid="switch-needed"' in extend.content.decode()
    later = (grant.expires_at + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    extended = client.post(reverse("sharing:grant_extend", kwargs=kwargs), {"expires_at": later, "reason": "moved"})
    assert extended.status_code == 403
    grant.refresh_from_db()
    assert grant.revoked_at is None and Grant.objects.filter(renewed_from=grant).count() == 0
    assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a).count() == 3
    # with Alpha active, revoking works
    in_alpha = _working_in(morgan, org_a)
    assert in_alpha.post(reverse("sharing:grant_revoke", kwargs=kwargs)).status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_at is not None


def test_the_policy_decides_staff_actions_on_the_active_organizations_objects_only(morgan, pending, org_a, org_b):
    from django.test import RequestFactory

    from apps.organizations.selectors import memberships_of
    from apps.sharing import policy

    request = RequestFactory().get("/sharing/")
    request.user = morgan
    request.my_memberships = memberships_of(user=morgan)
    request.organization = org_b
    facts = policy.decision_facts(request, morgan)
    assert not policy.can(morgan, policy.Action.DECIDE_ORIGINAL_REQUEST, pending, facts=facts)
    assert not policy.can(morgan, policy.Action.MANAGE_GRANT, pending.grant, facts=facts)
    assert policy.organization_to_switch_to(request, pending) == org_a
    request.organization = org_a
    facts = policy.decision_facts(request, morgan)
    assert policy.can(morgan, policy.Action.DECIDE_ORIGINAL_REQUEST, pending, facts=facts)
    assert policy.organization_to_switch_to(request, pending) is None
    # without a page's request (a service, a task) and on the API, the roles alone decide
    assert policy.can(morgan, policy.Action.DECIDE_ORIGINAL_REQUEST, pending)
    api = RequestFactory().post("/api/v1/grants/")
    api.user, api.my_memberships, api.organization = morgan, request.my_memberships, org_b
    assert policy.can(morgan, policy.Action.DECIDE_ORIGINAL_REQUEST, pending, facts=policy.decision_facts(api, morgan))
    assert OriginalRequest.objects.filter(pk=pending.pk, status=OriginalRequestStatus.PENDING).exists()
