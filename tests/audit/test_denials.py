"""A policy denial survives the rollback of the caller's transaction: a service refused inside its
own ``transaction.atomic`` leaves exactly one access.denied event, whichever way the refusal
reaches the client (Django's 403, DRF's 403, a view that answers it itself, a Celery task)."""

from __future__ import annotations

import pytest
from celery import shared_task
from django.core.exceptions import PermissionDenied

from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(org_a):
    return Membership.objects.get(user=member(org_a, Role.COORDINATOR, email="coord@alpha.example"))


def _denials():
    return AuditEvent.objects.filter(action="access.denied")


@pytest.mark.parametrize("kind", ["raising", "catching", "api"])
def test_refused_inside_atomic_over_http_leaves_one_denial(kind, settings, client_as, clinician_a, target,
                                                           verify_audit):
    settings.ROOT_URLCONF = "tests.audit.denial_urls"
    response = client_as(clinician_a).post(f"/test/denials/{kind}/{target.public_id}/")
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.role == Role.COORDINATOR  # nothing changed
    event = _denials().get()
    assert (event.actor, event.organization_id, event.outcome) == (clinician_a, target.organization_id, "denied")
    assert event.details == {"wanted": "manage_members"}
    code, out = verify_audit()
    assert code == 0, out


def test_refused_outside_atomic_is_recorded_once(client_as, org_b, clinician_a):
    from tests.factories import CaseFactory

    case = CaseFactory(organization=org_b)
    assert client_as(clinician_a).get(case.get_absolute_url()).status_code == 404
    assert _denials().count() == 1


@shared_task
def _membership_update_task(membership_id: int, by_id: int) -> None:
    from apps.accounts.models import User
    from apps.organizations.services import membership_update

    membership_update(membership=Membership.objects.get(pk=membership_id), by=User.objects.get(pk=by_id),
                      role=Role.ORG_ADMIN, is_active=True)


def test_refused_inside_atomic_in_a_task_leaves_one_denial(clinician_a, target):
    with pytest.raises(PermissionDenied):
        _membership_update_task.apply(args=(target.pk, clinician_a.pk), throw=True)
    assert _denials().count() == 1
