"""The role -> action table, every pair, through the one policy entry point."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.policy import Action
from tests.factories import MembershipFactory, UserFactory, member

pytestmark = pytest.mark.django_db

STAFF = {Action.VIEW_ORGANIZATION, Action.VIEW_ORG_DATA, Action.VIEW_MEMBERS, Action.VIEW_PATIENT_IDENTITY}
READER = {Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL,
          Action.SHARE_CASE, Action.MANAGE_CASE}
EXPECTED = {
    Role.ORG_ADMIN: STAFF | {Action.MANAGE_MEMBERS, Action.MANAGE_ORGANIZATION, Action.VIEW_AUDIT,
                             Action.VIEW_CASE, Action.MANAGE_CASE, Action.MANAGE_GRANT, Action.DELETE_STUDY},
    Role.RADIOLOGIST: STAFF | READER | {Action.MANAGE_GRANT, Action.DECIDE_ORIGINAL_REQUEST, Action.UPLOAD_STUDY,
                                        Action.EXPORT_DEIDENTIFIED, Action.DELETE_STUDY},
    Role.CLINICIAN: STAFF | READER | {Action.MANAGE_GRANT, Action.UPLOAD_STUDY, Action.EXPORT_DEIDENTIFIED},
    Role.COORDINATOR: STAFF | {Action.VIEW_CASE, Action.MANAGE_CASE, Action.MANAGE_GRANT, Action.UPLOAD_STUDY},
    Role.EXTERNAL_CONSULTANT: {Action.VIEW_ORGANIZATION},
    Role.PATIENT: {Action.VIEW_ORGANIZATION},
}
# Held by no role, decided on one object: ADD_NOTE (an open case: tests/cases), VIEW_DOCUMENTS and
# ATTACH_DOCUMENT (a case: tests/cases/test_attachment_scope.py), RUN_BOARD (the
# board's host), END_BOARD (its host or whoever may manage cases there: tests/cases/test_services.py),
# RENEW_GRANT (MANAGE_GRANT on the grant and SHARE_CASE on its case: tests/sharing/test_renew.py),
# REQUEST_ORIGINAL (a live grant's own recipient: tests/sharing/test_original_request_policy.py
# covers every kind).


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_every_role_and_action(role, action, org_a, org_b):
    user = member(org_a, role)
    assert policy.can(user, action, org_a) is (action in EXPECTED[role])
    assert (action in policy.ROLE_ACTIONS[role]) is (action in EXPECTED[role])
    # rights in one organization never reach another
    assert policy.can(user, action, org_b) is False


def test_inactive_membership_and_inactive_user_hold_nothing(org_a):
    user = UserFactory()
    m = MembershipFactory(user=user, organization=org_a, role=Role.ORG_ADMIN)
    assert policy.can(user, Action.MANAGE_MEMBERS, org_a)
    m.is_active = False
    m.save()
    assert not policy.can(user, Action.VIEW_ORGANIZATION, org_a)
    m.is_active = True
    m.save()
    user.is_active = False
    user.save()
    assert not policy.can(user, Action.VIEW_ORGANIZATION, org_a)


def test_require_raises_and_records_the_denial(org_a, clinician_a):
    with pytest.raises(PermissionDenied):
        policy.require(clinician_a, Action.MANAGE_MEMBERS, org_a)
    event = AuditEvent.objects.get(action="access.denied")
    assert event.outcome == "denied"
    assert event.actor == clinician_a
    assert event.organization == org_a
    assert event.details == {"wanted": "manage_members"}


def test_objects_of_an_organization_are_judged_by_their_organization(org_a, org_b, admin_a):
    membership_in_b = MembershipFactory(organization=org_b)
    assert not policy.can(admin_a, Action.MANAGE_MEMBERS, membership_in_b)
    membership_in_a = MembershipFactory(organization=org_a)
    assert policy.can(admin_a, Action.MANAGE_MEMBERS, membership_in_a)
