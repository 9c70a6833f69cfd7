"""Sign-in and second-factor events reach the audit page of each organization the person belongs
to, and of no other (issue #9: org admins see their own members' sign-ins)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters, event_search
from apps.organizations.models import Membership, Role
from tests.factories import TEST_PASSWORD, OrganizationFactory, member

pytestmark = pytest.mark.django_db


def _sign_in(email: str, password: str = TEST_PASSWORD) -> None:
    Client().post(reverse("account_login"), {"login": email, "password": password})


def _actions(org) -> list[str]:
    return [e.action for e in event_search(organization=org, filters=AuditFilters())]


def test_sign_in_events_go_to_each_of_the_members_organizations(org_a, org_b, admin_a, admin_b, client_as):
    org_c = OrganizationFactory(slug="gamma", name="Gamma")
    both = member(org_a, Role.RADIOLOGIST, email="both@alpha.example")
    Membership.objects.create(user=both, organization=org_b, role=Role.CLINICIAN)
    only_b = member(org_b, Role.CLINICIAN, email="only-b@beta.example")
    _sign_in(both.email)
    _sign_in(both.email, "wrong-password-1")
    _sign_in(only_b.email)
    signed_in = AuditEvent.objects.filter(action=actions.AUTH_SIGNED_IN, actor=both)
    assert sorted(signed_in.values_list("organization_id", flat=True)) == sorted([org_a.pk, org_b.pk])
    failed = AuditEvent.objects.filter(action=actions.AUTH_SIGN_IN_FAILED, target_id=str(both.public_id))
    assert sorted(failed.values_list("organization_id", flat=True)) == sorted([org_a.pk, org_b.pk])
    assert not failed.exclude(actor_label="anonymous").exists()  # the attempted address is never stored
    # A's admin sees their member's sign-ins, not B-only members'
    assert _actions(org_a) == [actions.AUTH_SIGN_IN_FAILED, actions.AUTH_SIGNED_IN]
    assert len(_actions(org_b)) == 3
    assert _actions(org_c) == []
    page = client_as(admin_a).get(reverse("audit:event_list"), {"action": actions.AUTH_SIGNED_IN})
    assert page.status_code == 200
    text = page.content.replace(b"<wbr>", b"")  # an e-mail address may break after a dot or its @
    assert b"both@alpha.example" in text and b"only-b@beta.example" not in text


def test_unknown_or_unaffiliated_accounts_stay_in_the_global_chain(org_a):
    _sign_in("nobody@nowhere.example", "wrong-password-1")
    event = AuditEvent.objects.get(action=actions.AUTH_SIGN_IN_FAILED)
    assert event.organization_id is None and event.target_id == ""
    assert _actions(org_a) == []


def test_inactive_membership_does_not_receive_events(org_a, org_b, settings):
    """Deactivated longer ago than LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS (a recent leaver's are
    recorded: tests/audit/test_former_member_events.py)."""
    from datetime import timedelta

    from django.utils import timezone

    user = member(org_a, Role.CLINICIAN, email="left@alpha.example")
    Membership.objects.create(user=user, organization=org_b, role=Role.CLINICIAN, is_active=False,
                              deactivated_at=timezone.now() - timedelta(
                                  days=settings.LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS + 1))
    _sign_in(user.email)
    assert list(AuditEvent.objects.filter(action=actions.AUTH_SIGNED_IN).values_list("organization_id", flat=True)) \
        == [org_a.pk]


def test_second_factor_failures_reach_the_organization(org_a, clinician_a):
    from tests.accounts.conftest import enrol, totp_code

    device = enrol(clinician_a)
    client = Client()
    client.force_login(clinician_a)
    wrong = "123456" if totp_code(device) != "123456" else "654321"
    client.post(reverse("accounts:mfa_verify"), {"code": wrong})
    assert actions.AUTH_OTP_FAILED in _actions(org_a)
