"""Whether an organization allows anonymous links is ``policy.anonymous_links_allowed``'s to say,
everywhere: opening an existing anonymous link, creating one and renewing one asked it, not the
organization's switch read directly in the sharing services (three places did). Each test keeps
the switch on and has the policy say no: the service must refuse."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.sharing import policy, services
from apps.sharing.models import Grant, ShareLink
from apps.sharing.usecases import RecipientKind, UseCase

pytestmark = pytest.mark.django_db


@pytest.fixture
def switch_on(case):
    case.organization.anonymous_links_enabled = True
    case.organization.save(update_fields=["anonymous_links_enabled"])
    return case.organization


@pytest.fixture
def policy_says_no(monkeypatch, switch_on):
    """The policy refuses anonymous links to ``switch_on``'s organization (its switch stays on);
    the organizations it was asked about are kept."""
    asked = []
    allowed = policy.anonymous_links_allowed

    def refuse(organization):
        asked.append(organization.pk)
        return False if organization.pk == switch_on.pk else allowed(organization)

    def say_no():
        monkeypatch.setattr(policy, "anonymous_links_allowed", refuse)
        return asked

    return say_no


def _anonymous(case, owner):
    return services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM, recipient_kind=RecipientKind.ANONYMOUS)


def test_an_existing_anonymous_link_is_not_opened(case, owner, policy_says_no):
    _grant, link, raw = _anonymous(case, owner)
    assert services.share_link_refusal(link=link, user=None) is None  # it opens while the policy allows
    asked = policy_says_no()
    assert services.share_link_refusal(link=link, user=None) == services.LinkRefusal.ANONYMOUS_OFF
    assert case.organization.pk in asked
    response = Client().get(reverse("sharing:link_open", kwargs={"token": raw}))
    assert response.status_code == 403
    link.refresh_from_db()
    assert link.use_count == 0


def test_an_anonymous_link_is_not_created(case, owner, client_as, policy_says_no):
    asked = policy_says_no()
    with pytest.raises(PermissionDenied, match="switched off"):
        _anonymous(case, owner)
    assert case.organization.pk in asked
    assert AuditEvent.objects.filter(action="share.refused", details__reason="anonymous_links_off").exists()
    # nor through the API, which goes through the same service
    response = client_as(owner).post("/api/v1/grants/", json.dumps(
        {"case": str(case.public_id), "use_case": "custom", "recipient_kind": "anonymous"}),
        content_type="application/json")
    assert response.status_code == 403
    assert not Grant.objects.exists() and not ShareLink.objects.exists()


def test_an_anonymous_link_is_not_renewed(case, owner, policy_says_no):
    grant, _link, _raw = _anonymous(case, owner)
    assert services.grant_renew_refusal(grant=grant) is None  # renewable while the policy allows
    asked = policy_says_no()
    assert services.grant_renew_refusal(grant=grant) == services.RenewRefusal.ANONYMOUS_OFF
    assert case.organization.pk in asked
    with pytest.raises(PermissionDenied, match="switched off"):
        services.grant_renew(grant=grant, by=owner)
    assert AuditEvent.objects.filter(action="share.refused", details__reason="anonymous_links_off").exists()
    assert Grant.objects.get().revoked_at is None
