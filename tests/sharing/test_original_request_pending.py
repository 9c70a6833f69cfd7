"""One request for the original DICOM at a time: while a recipient's request under a share waits
for a decision, the shared case and "Shared with me" say so (when it was sent, who decides) and do
not offer the button again, the form sends them back, and a second submit makes no second request.
A declined request says so, and the policy (REQUEST_ORIGINAL) lets them ask again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.models import OriginalRequest
from apps.sharing.policy import Action, OriginalRefusal
from tests.factories import GrantFactory, member

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}
REASON = "Need the thin-slice series to measure."


@pytest.fixture
def recipient(org_a):
    return member(org_a, Role.EXTERNAL_CONSULTANT, email="reader@alpha.example")


@pytest.fixture
def grant(case, owner, recipient):
    return GrantFactory(organization=case.organization, case=case, grantee=recipient, created_by=owner, **PREVIEW)


def _urls(case, grant):
    return (reverse("sharing:shared_case", kwargs={"case_id": case.public_id}),
            reverse("sharing:shared_with_me"),
            reverse("sharing:original_request_create", kwargs={"grant_id": grant.public_id}))


def test_a_pending_request_is_shown_and_not_offered_again(case, grant, recipient, client_as):
    client = client_as(recipient)
    case_url, mine_url, form_url = _urls(case, grant)
    assert form_url in client.get(case_url).content.decode()
    assert client.post(form_url, {"reason": REASON}).status_code == 302

    page = client.get(case_url).content.decode()
    assert form_url not in page and 'data-testid="request-original"' not in page
    assert 'data-testid="original-request-pending"' in page
    assert "waiting for a decision" in page and case.organization.name in page  # who decides
    mine = client.get(mine_url).content.decode()
    assert form_url not in mine and 'data-testid="original-request-pending"' in mine

    # the form sends them back to the case, told so; a second submit is refused, not recorded as a denial
    response = client.get(form_url, follow=True)
    assert response.redirect_chain == [(case_url, 302)]
    assert "You already asked" in response.content.decode()
    response = client.post(form_url, {"reason": "Another reason, just in case."})
    assert response.status_code == 400 and "You already asked" in response.content.decode()
    assert OriginalRequest.objects.count() == 1
    assert not AuditEvent.objects.filter(action="access.denied").exists()


def test_the_policy_refuses_a_second_request_while_the_first_waits(case, grant, recipient):
    services.original_request_create(grant=grant, by=recipient, reason=REASON)
    assert policy.original_request_refusal(recipient, grant) is OriginalRefusal.PENDING
    assert not policy.can(recipient, Action.REQUEST_ORIGINAL, grant)
    assert policy.can_each(recipient, Action.REQUEST_ORIGINAL, [grant, grant]) == [False, False]
    with pytest.raises(Exception, match="already asked"):
        services.original_request_create(grant=grant, by=recipient, reason=REASON)
    assert OriginalRequest.objects.count() == 1


def test_a_declined_request_says_so_and_may_be_asked_again(case, grant, owner, recipient, client_as):
    client = client_as(recipient)
    case_url, _mine_url, form_url = _urls(case, grant)
    req = services.original_request_create(grant=grant, by=recipient, reason=REASON)
    services.original_request_decide(original_request=req, by=owner, approve=False, note="Previews suffice here.")

    assert policy.original_request_refusal(recipient, grant) is None  # the policy lets them ask again
    page = client.get(case_url).content.decode()
    assert 'data-testid="original-request-declined"' in page and "Previews suffice here." in page
    assert 'data-testid="original-request-pending"' not in page
    # Shared with me, where the requester looks first, gives the decider's note too (QA: only the
    # shared case page did)
    row = client.get(reverse("sharing:shared_with_me")).content.decode()
    assert 'data-testid="original-request-declined"' in row
    assert 'data-testid="original-request-decision-note"' in row and "Previews suffice here." in row
    assert form_url in page and "Request the original DICOM again" in page
    assert client.post(form_url, {"reason": "The series is needed for volumetry."}).status_code == 302
    assert OriginalRequest.objects.filter(status="pending").count() == 1
    page = client.get(case_url).content.decode()
    assert 'data-testid="original-request-pending"' in page and form_url not in page


def test_an_approved_request_gives_the_download_not_a_pending_note(case, grant, owner, recipient, client_as):
    req = services.original_request_create(grant=grant, by=recipient, reason=REASON)
    services.original_request_decide(original_request=req, by=owner, approve=True, hours=6)
    page = client_as(recipient).get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id}))
    body = page.content.decode()
    assert 'data-testid="original-request-pending"' not in body and 'data-testid="request-original"' not in body


def test_another_recipients_pending_request_changes_nothing_for_me(case, owner, org_a, recipient, client_as):
    """Pending is per person: a group member's request does not stop another member asking."""
    other = member(org_a, Role.EXTERNAL_CONSULTANT)
    group = GrantFactory(organization=org_a, case=case, grantee=None, group_name="Board", created_by=owner, **PREVIEW)
    group.group_members.set([recipient, other])
    services.original_request_create(grant=group, by=other, reason=REASON)
    assert policy.original_request_refusal(recipient, group) is None
    page = client_as(recipient).get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id}))
    body = page.content.decode()
    assert 'data-testid="original-request-pending"' not in body
    assert reverse("sharing:original_request_create", kwargs={"grant_id": group.public_id}) in body


def test_a_pending_request_is_not_said_once_another_share_gives_the_original(case, grant, owner, recipient,
                                                                            client_as):
    """Asked under a preview share, then given the original by another share: the page offers the
    original's download, and "your request is waiting" under it would only confuse."""
    client = client_as(recipient)
    case_url, _mine, form_url = _urls(case, grant)
    assert client.post(form_url, {"reason": REASON}).status_code == 302
    assert 'data-testid="original-request-pending"' in client.get(case_url).content.decode()
    GrantFactory(organization=case.organization, case=case, grantee=recipient, created_by=owner,
                 permissions=["view", "download_preview", "download_original"], renditions=["preview", "original"])
    page = client.get(case_url).content.decode()
    assert 'data-testid="original-request-pending"' not in page
    assert OriginalRequest.objects.get().status == "pending"  # still there for the deciders
