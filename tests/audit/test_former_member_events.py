"""A person whose membership an organization deactivated is still that organization's business
for a while (``LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS``): their later sign-ins, failed sign-ins and
lockouts are recorded in its trail, so its audit page and exports show a leaver trying to come
back. Before, account events went only to organizations where the person was an active member,
else to the global chain, which no page or export shows (found by a security review)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.organizations import services as org_services
from apps.organizations.models import Membership, Role
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db

ACCOUNT = (actions.AUTH_SIGN_IN_FAILED, actions.AUTH_SIGNED_IN)


def _sign_in(email: str, password: str = TEST_PASSWORD) -> None:
    Client().post(reverse("account_login"), {"login": email, "password": password})


@pytest.fixture
def leaver(org_a, admin_a):
    """A radiologist of Alpha whose membership Alpha's admin deactivated (offboarded)."""
    user = member(org_a, Role.RADIOLOGIST, email="leaver@alpha.example")
    org_services.membership_update(membership=Membership.objects.get(user=user, organization=org_a), by=admin_a,
                                   role=Role.RADIOLOGIST, is_active=False)
    return user


def _seen_by(client, action: str) -> tuple[bytes, bytes]:
    """The audit page and the CSV export of the signed-in admin's organization, for ``action``."""
    page = client.get(reverse("audit:event_list"), {"action": action})
    assert page.status_code == 200
    export = client.post(reverse("audit:export_csv"), {"action": action})
    assert export.status_code == 200
    return page.content.replace(b"<wbr>", b""), b"".join(export.streaming_content)


def test_deactivating_a_membership_keeps_when(org_a, admin_a, leaver):
    membership = Membership.objects.get(user=leaver, organization=org_a)
    assert membership.deactivated_at is not None
    assert timezone.now() - membership.deactivated_at < timedelta(minutes=1)
    org_services.membership_update(membership=membership, by=admin_a, role=Role.RADIOLOGIST, is_active=True)
    membership.refresh_from_db()
    assert membership.is_active and membership.deactivated_at is None


def test_a_leavers_sign_in_and_failed_sign_in_are_in_the_old_organizations_page_and_export(
        org_a, org_b, admin_a, admin_b, leaver, client_as):
    _sign_in(leaver.email, "wrong-password-1")
    _sign_in(leaver.email)
    events = AuditEvent.objects.filter(action__in=ACCOUNT)
    assert sorted(events.values_list("action", "organization_id")) == sorted((a, org_a.pk) for a in ACCOUNT)
    alpha, beta = client_as(admin_a), client_as(admin_b)
    for action in ACCOUNT:
        page, csv_body = _seen_by(alpha, action)
        assert b"leaver@alpha.example" in page or str(leaver.public_id).encode() in page
        assert action.encode() in csv_body
        assert b"leaver@alpha.example" in csv_body or str(leaver.public_id).encode() in csv_body
        # another organization never had them: it sees nothing of them
        page, csv_body = _seen_by(beta, action)
        assert b"leaver@" not in page and b"leaver@" not in csv_body
        assert str(leaver.public_id).encode() not in csv_body


def test_a_leavers_lockout_is_in_the_old_organizations_trail(org_a, leaver, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(leaver.email, f"wrong-password-{n}")
    locked = AuditEvent.objects.filter(action=actions.AUTH_LOCKED_OUT)
    assert locked.exists()
    assert set(locked.values_list("organization_id", flat=True)) == {org_a.pk}


def test_a_membership_ended_longer_ago_than_the_period_no_longer_receives_them(org_a, leaver, settings):
    settings.LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS = 30
    Membership.objects.filter(user=leaver).update(deactivated_at=timezone.now() - timedelta(days=31))
    _sign_in(leaver.email)
    assert list(AuditEvent.objects.filter(action=actions.AUTH_SIGNED_IN).values_list(
        "organization_id", flat=True)) == [None]
    Membership.objects.filter(user=leaver).update(deactivated_at=timezone.now() - timedelta(days=29))
    _sign_in(leaver.email)
    assert list(AuditEvent.objects.filter(action=actions.AUTH_SIGNED_IN).order_by("id").values_list(
        "organization_id", flat=True)) == [None, org_a.pk]


def test_a_membership_ended_at_a_time_not_kept_is_not_taken_as_recent(org_a):
    """Deactivated before the time was kept (or outside the service), the date unknown: it may
    have ended years ago, so nothing of the person reaches that organization's trail."""
    user = member(org_a, Role.CLINICIAN, email="old-leaver@alpha.example")
    Membership.objects.filter(user=user).update(is_active=False, deactivated_at=None)
    _sign_in(user.email, "wrong-password-1")
    assert list(AuditEvent.objects.filter(action=actions.AUTH_SIGN_IN_FAILED).values_list(
        "organization_id", flat=True)) == [None]


def test_someone_who_left_long_ago_and_works_elsewhere_is_not_reported_to_the_old_organization(org_a, org_b):
    """Left Alpha at a time not known (legacy data: migration 0006 found no event), now at Beta:
    their sign-ins at Beta, with IP and user agent, go to Beta's trail alone (found by a reviewer)."""
    user = member(org_a, Role.RADIOLOGIST, email="left-2019@alpha.example")
    Membership.objects.filter(user=user, organization=org_a).update(is_active=False, deactivated_at=None)
    Membership.objects.create(user=user, organization=org_b, role=Role.RADIOLOGIST)
    _sign_in(user.email)
    assert list(AuditEvent.objects.filter(action=actions.AUTH_SIGNED_IN).values_list(
        "organization_id", flat=True)) == [org_b.pk]


def test_taking_a_member_back_by_adding_them_clears_when_they_left(org_a, admin_a, leaver):
    membership, _created = org_services.membership_add(organization=org_a, by=admin_a, email=leaver.email,
                                                       role=Role.RADIOLOGIST)
    membership.refresh_from_db()
    assert membership.is_active and membership.deactivated_at is None


def test_taking_a_member_back_by_invitation_clears_when_they_left(org_a, admin_a, leaver):
    from apps.accounts import services as account_services

    invitation, _raw = account_services.invitation_create(organization=org_a, by=admin_a, email=leaver.email,
                                                          role=Role.RADIOLOGIST, cases=[])
    account_services.invitation_accept(invitation=invitation, user=leaver)
    membership = Membership.objects.get(user=leaver, organization=org_a)
    assert membership.is_active and membership.deactivated_at is None


def test_the_migration_takes_when_from_the_trail(org_a, admin_a):
    """Memberships deactivated before ``deactivated_at`` existed get the time their organization's
    trail recorded it; one with no such record keeps None (ended at a time not known: not routed)."""
    from importlib import import_module

    from django.apps import apps as django_apps

    migration = import_module("apps.organizations.migrations.0006_membership_deactivated_at")
    recorded = member(org_a, Role.CLINICIAN, email="recorded@alpha.example")
    unrecorded = member(org_a, Role.CLINICIAN, email="unrecorded@alpha.example")
    org_services.membership_update(membership=Membership.objects.get(user=recorded), by=admin_a,
                                   role=Role.CLINICIAN, is_active=False)
    Membership.objects.filter(user__in=[recorded, unrecorded]).update(is_active=False, deactivated_at=None)
    migration.deactivated_at_from_the_trail(django_apps, None)
    event = AuditEvent.objects.filter(action="membership.updated").latest("id")
    assert Membership.objects.get(user=recorded).deactivated_at == event.created_at
    assert Membership.objects.get(user=unrecorded).deactivated_at is None
