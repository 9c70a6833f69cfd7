"""Who may reset a person's second factor: themselves, or an admin of every organization they
are a member of. A person who works with two hospitals was under either one's admin alone: a
reset by one, then that organization's single sign-on, signed in as them in the other too. The
operator resets theirs (``manage.py mfa_reset``)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import services
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from apps.sharing import policy
from tests.accounts.conftest import enrol
from tests.factories import member

pytestmark = pytest.mark.django_db


def _has_second_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user).exists() or StaticDevice.objects.filter(user=user).exists()


@pytest.fixture
def in_both(org_a, org_b, clinician_a):
    """clinician_a of org A, who also joined org B as an external consultant, enrolled."""
    Membership.objects.create(user=clinician_a, organization=org_b, role=Role.EXTERNAL_CONSULTANT)
    enrol(clinician_a)
    return clinician_a


def test_an_admin_of_one_of_two_organizations_may_not_reset_it(in_both, admin_a, admin_b):
    for admin in (admin_a, admin_b):
        assert not policy.second_factor_reset_allowed(admin, in_both)
        with pytest.raises(PermissionDenied):
            services.mfa_reset(user=in_both, by=admin)
    assert _has_second_factor(in_both)


def test_an_admin_of_every_organization_of_the_person_or_the_person_may(in_both, admin_a, org_b):
    assert policy.second_factor_reset_allowed(in_both, in_both)
    Membership.objects.create(user=admin_a, organization=org_b, role=Role.ORG_ADMIN)
    assert policy.second_factor_reset_allowed(admin_a, in_both)
    services.mfa_reset(user=in_both, by=admin_a)
    assert not _has_second_factor(in_both)


def test_a_membership_ended_elsewhere_leaves_the_reset_to_the_one_organization(in_both, admin_a, org_b):
    Membership.objects.filter(user=in_both, organization=org_b).update(is_active=False)
    services.mfa_reset(user=in_both, by=admin_a)
    assert not _has_second_factor(in_both)


def test_the_members_page_says_why_and_records_the_refusal(in_both, admin_a, org_a, verified_client):
    membership = Membership.objects.get(user=in_both, organization=org_a)
    client = verified_client(admin_a)
    page = client.get(reverse("organizations:membership_edit", args=[membership.public_id])).content.decode()
    assert 'data-testid="mfa-reset-elsewhere"' in page
    assert reverse("accounts:member_mfa_reset", args=[membership.public_id]) not in page  # no button
    response = client.post(reverse("accounts:member_mfa_reset", args=[membership.public_id]), follow=True)
    assert "is also a member of another organization" in response.content.decode()
    assert _has_second_factor(in_both)
    assert AuditEvent.objects.filter(action="access.denied", actor=admin_a, outcome="denied").count() == 1
    assert not AuditEvent.objects.filter(action="auth.mfa_reset").exists()
    # a member of this organization alone: the button, and the reset
    solo = member(org_a, Role.CLINICIAN)
    enrol(solo)
    solo_membership = Membership.objects.get(user=solo)
    page = client.get(reverse("organizations:membership_edit", args=[solo_membership.public_id])).content.decode()
    assert reverse("accounts:member_mfa_reset", args=[solo_membership.public_id]) in page
    assert client.post(reverse("accounts:member_mfa_reset", args=[solo_membership.public_id])).status_code == 302
    assert not _has_second_factor(solo)


def test_the_operator_resets_it_and_every_session_ends(in_both):
    session = Client()
    session.force_login(in_both)
    call_command("mfa_reset", in_both.email.upper())
    assert not _has_second_factor(in_both)
    assert session.get("/")["Location"].startswith("/accounts/login/")
    # in the trail of each organization of theirs, by the system
    events = AuditEvent.objects.filter(action__in=["auth.mfa_reset", "auth.sessions_ended"],
                                       target_id=str(in_both.public_id))
    assert sorted(events.values_list("action", "organization__slug", "actor_id", "actor_type")) == sorted(
        (action, org, None, "system") for action in ("auth.mfa_reset", "auth.sessions_ended")
        for org in Membership.objects.filter(user=in_both).values_list("organization__slug", flat=True))
    with pytest.raises(CommandError):
        call_command("mfa_reset", "nobody@nowhere.example")
