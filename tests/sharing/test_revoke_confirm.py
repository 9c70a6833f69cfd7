"""Revoke on "My shares" asks a second time: one tap (a mis-tap on a tablet) took a colleague's
access away at once (found by QA). The Revoke of each row is a link to a page (GET) that says whose
access to which case ends and what that does, with its own button (a CSRF-checked POST to the same
address, which revokes as before) and a way back; no JavaScript is needed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import services
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def grant(case, owner, consultant):
    return services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                 expires_at=timezone.now() + timedelta(hours=24))


def _revoke_url(grant) -> str:
    return reverse("sharing:grant_revoke", kwargs={"grant_id": grant.public_id})


def _row(html: str, grant) -> str:
    return html.split(f'id="share-{grant.public_id}"', 1)[1].split("</tr>", 1)[0]


def test_my_shares_revoke_leads_to_a_confirmation_and_does_not_revoke_by_itself(grant, owner, case, client_as):
    client = client_as(owner)
    row = _row(client.get(reverse("sharing:my_shares")).content.decode(), grant)
    # the row holds no form that revokes: its Revoke is a link to the confirmation
    assert not re.search(r'<form[^>]*method="post"[^>]*' + re.escape(_revoke_url(grant)), row)
    assert f'href="{_revoke_url(grant)}"' in row and "Revoke" in row
    page = client.get(_revoke_url(grant))
    html = page.content.decode()
    assert page.status_code == 200 and 'data-testid="revoke-confirm"' in html
    # says whose access to what, and what revoking does, before its own button
    assert f"Revoke access to “{case.title}”?" in html
    assert "consultant@alpha.example" in html.split('data-testid="revoke-recipient"', 1)[1].split("</dd>", 1)[0]
    assert "Access ends at the recipient's next request" in html and "This cannot be undone" in html
    form = html.split('data-testid="revoke-confirm"', 1)[1].split("</form>", 1)[0]
    assert f'method="post" action="{_revoke_url(grant)}"' in form and "csrfmiddlewaretoken" in form
    assert "Revoke access</button>" in form
    assert f'href="{reverse("sharing:my_shares")}#share-{grant.public_id}"' in form  # Cancel: back to its row
    # looking at it changed nothing, and recorded no revocation
    grant.refresh_from_db()
    assert grant.revoked_at is None
    assert not AuditEvent.objects.filter(action="grant.revoked").exists()


def test_the_confirmations_button_revokes_with_its_csrf_token(grant, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    html = client.get(_revoke_url(grant)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    # without the page's token: refused, nothing revoked
    assert client.post(_revoke_url(grant)).status_code == 403
    grant.refresh_from_db()
    assert grant.revoked_at is None
    done = client.post(_revoke_url(grant), {"csrfmiddlewaretoken": token})
    assert done.status_code == 302 and done["Location"] == reverse("sharing:my_shares")
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoked_by == owner
    assert AuditEvent.objects.filter(action="grant.revoked", actor=owner).count() == 1


def test_a_share_that_has_ended_is_not_offered_for_revoking_again(grant, owner, client_as):
    services.grants_revoke(grants=[grant], by=owner, reason="revoked by sharer")
    client = client_as(owner)
    response = client.get(_revoke_url(grant))
    assert response.status_code == 302
    assert response["Location"] == f'{reverse("sharing:my_shares")}#share-{grant.public_id}'
    assert "This share has already ended." in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize("who", ["recipient", "other_member", "other_tenant"])
def test_the_confirmation_is_refused_to_whoever_may_not_revoke(grant, consultant, org_a, org_b, client_as, who):
    user = {"recipient": consultant, "other_member": member(org_a, Role.EXTERNAL_CONSULTANT),
            "other_tenant": member(org_b, Role.ORG_ADMIN)}[who]
    response = client_as(user).get(_revoke_url(grant))
    assert response.status_code in (403, 404)
    assert "revoke-confirm" not in response.content.decode()
