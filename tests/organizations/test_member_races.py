"""Two org admins at once (two connections): the organization never loses its last admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from apps.organizations import services
from apps.organizations.models import Membership, Role
from tests.factories import member
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]


def test_two_admins_demoting_each_other_at_once_leave_the_organization_an_admin(org_a, admin_a, monkeypatch):
    """Each admin demotes the other at the same moment. Each change alone leaves one admin; both
    together would leave none. The second waits for the first and is then refused."""
    admin_2 = member(org_a, Role.ORG_ADMIN)
    mine = Membership.objects.get(user=admin_a, organization=org_a)
    theirs = Membership.objects.get(user=admin_2, organization=org_a)
    real_check = services._ensure_an_admin_remains
    failures: list[BaseException] = []
    other = []

    def check(membership, **kwargs):
        real_check(membership, **kwargs)
        if not other:  # admin_a's change was checked and is not committed: admin_2 acts now
            other.append(in_thread_until_blocked(failures, services.membership_update, membership=mine, by=admin_2,
                                                 role=Role.CLINICIAN, is_active=True))

    monkeypatch.setattr(services, "_ensure_an_admin_remains", check)
    services.membership_update(membership=theirs, by=admin_a, role=Role.CLINICIAN, is_active=True)
    other[0].join(timeout=30)

    admins = Membership.objects.filter(organization=org_a, role=Role.ORG_ADMIN, is_active=True)
    assert list(admins.values_list("user_id", flat=True)) == [admin_a.pk]
    assert len(failures) == 1 and isinstance(failures[0], (PermissionDenied, ValidationError))


def test_an_admin_deactivating_the_other_admin_while_being_demoted_leaves_an_admin(org_a, admin_a, monkeypatch):
    """The same with a deactivation: admin_a deactivates admin_2 while admin_2 makes admin_a a clinician."""
    admin_2 = member(org_a, Role.ORG_ADMIN)
    mine = Membership.objects.get(user=admin_a, organization=org_a)
    theirs = Membership.objects.get(user=admin_2, organization=org_a)
    real_check = services._ensure_an_admin_remains
    failures: list[BaseException] = []
    other = []

    def check(membership, **kwargs):
        real_check(membership, **kwargs)
        if not other:
            other.append(in_thread_until_blocked(failures, services.membership_update, membership=mine, by=admin_2,
                                                 role=Role.CLINICIAN, is_active=True))

    monkeypatch.setattr(services, "_ensure_an_admin_remains", check)
    services.membership_update(membership=theirs, by=admin_a, role=Role.ORG_ADMIN, is_active=False)
    other[0].join(timeout=30)

    assert Membership.objects.filter(organization=org_a, role=Role.ORG_ADMIN, is_active=True).count() == 1
    assert len(failures) == 1

