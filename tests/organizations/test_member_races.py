"""Two org admins at once (two connections): the organization never loses its last admin, and
the same new person added twice (a double click) is added once, without a server error."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse

from apps.accounts.models import User
from apps.organizations import services
from apps.organizations.models import Membership, Role
from tests.factories import member
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]


def _admin_acts_while_checked(org_a, admin_a, monkeypatch, *, role: str, is_active: bool) -> list[BaseException]:
    """admin_a changes a second admin (to ``role``, ``is_active``); once that change is checked and
    not yet committed, the second admin makes admin_a a clinician. What the second one's request
    raised."""
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
    services.membership_update(membership=theirs, by=admin_a, role=role, is_active=is_active)
    other[0].join(timeout=30)
    return failures


def test_two_admins_demoting_each_other_at_once_leave_the_organization_an_admin(org_a, admin_a, monkeypatch):
    """Each admin demotes the other at the same moment. Each change alone leaves one admin; both
    together would leave none. The second waits for the first and is then refused."""
    failures = _admin_acts_while_checked(org_a, admin_a, monkeypatch, role=Role.CLINICIAN, is_active=True)
    admins = Membership.objects.filter(organization=org_a, role=Role.ORG_ADMIN, is_active=True)
    assert list(admins.values_list("user_id", flat=True)) == [admin_a.pk]
    assert len(failures) == 1 and isinstance(failures[0], (PermissionDenied, ValidationError))


def test_an_admin_deactivating_the_other_admin_while_being_demoted_leaves_an_admin(org_a, admin_a, monkeypatch):
    """The same with a deactivation: admin_a deactivates admin_2 while admin_2 makes admin_a a clinician."""
    failures = _admin_acts_while_checked(org_a, admin_a, monkeypatch, role=Role.ORG_ADMIN, is_active=False)
    assert Membership.objects.filter(organization=org_a, role=Role.ORG_ADMIN, is_active=True).count() == 1
    assert len(failures) == 1


def test_the_same_new_person_added_twice_at_once_is_added_once(client_as, admin_a, org_a, monkeypatch):
    """A double click on "Add member" for an address with no account: both requests find no
    account; the first creates it. The second is told the person is a member already (400), not a 500."""
    real_create = User.objects.create_user
    failures: list[BaseException] = []
    other = []

    def create_user(*args, **kwargs):
        if not other:  # the other request gets here first and commits
            other.append(True)
            in_thread_until_blocked(failures, services.membership_add, organization=org_a, by=admin_a,
                                    email="new.person@example.org", role=Role.CLINICIAN).join(timeout=30)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(User.objects, "create_user", create_user)
    response = client_as(admin_a).post(reverse("organizations:members"), {
        "email": "new.person@example.org", "role": Role.CLINICIAN})

    assert not failures
    assert response.status_code == 400
    assert "already a member" in response.content.decode()
    user = User.objects.get(email="new.person@example.org")
    assert Membership.objects.filter(user=user, organization=org_a, is_active=True).count() == 1


def test_a_member_changed_while_an_event_of_the_organization_commits_does_not_deadlock(org_a, admin_a):
    """An event recorded in the organization holds its chain's head until its transaction commits,
    and its foreign key to the organization is checked then (a KEY SHARE lock on the row). The
    membership change locked the row FOR UPDATE, which that check waits for, and then waited for
    the chain's head to record its own event: a deadlock, one of them refused. It now takes the
    row FOR NO KEY UPDATE (what every writer that locks the row then records takes)."""
    import threading

    from apps.audit.models import AuditEvent
    from apps.audit.services import record
    from tests.threads import in_thread

    record(action="case.viewed", organization=org_a)  # the chain's head is there
    clinician = member(org_a, Role.CLINICIAN)
    theirs = Membership.objects.get(user=clinician, organization=org_a)
    failures: list[BaseException] = []
    recorded, go = threading.Event(), threading.Event()

    def viewer():
        from django.db import transaction

        with transaction.atomic():
            record(action="case.viewed", organization=org_a)
            recorded.set()
            go.wait(10)

    writer = in_thread(failures, viewer)
    assert recorded.wait(10)
    change = in_thread_until_blocked(failures, services.membership_update, membership=theirs, by=admin_a,
                                     role=Role.RADIOLOGIST, is_active=True)
    go.set()
    writer.join(20)
    change.join(20)
    assert not failures, failures
    assert Membership.objects.get(pk=theirs.pk).role == Role.RADIOLOGIST
    assert AuditEvent.objects.filter(organization=org_a, action="membership.updated").count() == 1
