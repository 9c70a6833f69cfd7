"""A member who is also a member of another organization is not made staff here without their
consent. Staff come under the organization's single sign-on and its switch for password sign-in:
an org admin made another hospital's radiologist, a consultant here, a "radiologist" of their
own organization, whose password sign-in was off, and locked them out of their password
everywhere."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations import services
from apps.organizations.models import Membership, Role
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def consultant_from_beta(org_a, org_b):
    """A radiologist of Beta who accepted Alpha's invitation as a consultant."""
    person = member(org_b, Role.RADIOLOGIST, email="victim@beta.example")
    Membership.objects.create(user=person, organization=org_a, role=Role.EXTERNAL_CONSULTANT)
    return person


@pytest.mark.parametrize("role", [Role.RADIOLOGIST, Role.CLINICIAN, Role.COORDINATOR, Role.ORG_ADMIN])
def test_another_organizations_member_is_not_made_staff_here(client_as, admin_a, org_a, consultant_from_beta, role):
    m = Membership.objects.get(user=consultant_from_beta, organization=org_a)
    response = client_as(admin_a).post(reverse("organizations:membership_edit", args=[m.public_id]),
                                       {"role": role, "is_active": "on"})
    assert response.status_code == 400
    assert ("victim@beta.example is also a member of another organization: they cannot be made staff here "
            "without their consent. They keep their role.") in response.content.decode()
    m.refresh_from_db()
    assert m.role == Role.EXTERNAL_CONSULTANT and m.is_active
    assert not AuditEvent.objects.filter(action="membership.updated", organization=org_a).exists()


def test_what_an_admin_may_still_change(admin_a, org_a, org_b, consultant_from_beta):
    """A consultant's other changes (deactivation); a member of this organization alone made
    staff; staff of two organizations moved between staff roles here."""
    m = Membership.objects.get(user=consultant_from_beta, organization=org_a)
    services.membership_update(membership=m, by=admin_a, role=Role.EXTERNAL_CONSULTANT, is_active=False)
    services.membership_update(membership=m, by=admin_a, role=Role.EXTERNAL_CONSULTANT, is_active=True)
    ours = member(org_a, Role.EXTERNAL_CONSULTANT, email="ours@alpha.example")
    mine = Membership.objects.get(user=ours, organization=org_a)
    assert services.membership_update(membership=mine, by=admin_a, role=Role.CLINICIAN, is_active=True).role == \
        Role.CLINICIAN
    both = member(org_a, Role.CLINICIAN, email="both@alpha.example")
    Membership.objects.create(user=both, organization=org_b, role=Role.CLINICIAN)
    theirs = Membership.objects.get(user=both, organization=org_a)
    assert services.membership_update(membership=theirs, by=admin_a, role=Role.RADIOLOGIST,
                                      is_active=True).role == Role.RADIOLOGIST
    # once they are no member of Beta any more, Alpha's own consultant
    Membership.objects.filter(user=consultant_from_beta, organization=org_b).update(is_active=False)
    assert services.membership_update(membership=m, by=admin_a, role=Role.RADIOLOGIST, is_active=True).role == \
        Role.RADIOLOGIST


def test_a_member_deactivated_here_is_not_taken_back_as_staff(admin_a, org_a, consultant_from_beta):
    """Adding the address again takes a deactivated member back, with the role given: not as staff
    for a member of another organization, who was not staff here."""
    m = Membership.objects.get(user=consultant_from_beta, organization=org_a)
    services.membership_update(membership=m, by=admin_a, role=Role.EXTERNAL_CONSULTANT, is_active=False)
    with pytest.raises(ValidationError) as refused:
        services.membership_add(organization=org_a, by=admin_a, email="Victim@beta.example", role=Role.CLINICIAN)
    assert "cannot be made staff here without their consent" in refused.value.messages[0]
    m.refresh_from_db()
    assert not m.is_active and m.role == Role.EXTERNAL_CONSULTANT
    taken_back, created = services.membership_add(organization=org_a, by=admin_a, email="victim@beta.example",
                                                  role=Role.EXTERNAL_CONSULTANT)
    assert taken_back.pk == m.pk and taken_back.is_active and not created
