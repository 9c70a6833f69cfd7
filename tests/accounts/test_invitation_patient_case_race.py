"""A patient invitation accepted while its case is being closed, two connections: the acceptance
read the case without a lock, so a close not committed yet was seen open and the patient was let
in to a case closed at that same moment (found by a reviewer). The case's row is now locked
before the check, as a share locks it: the acceptance waits for the close, then sees the case
closed and is refused, nothing given."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.accounts import services
from apps.accounts.models import Invitation
from apps.cases import services as case_services
from apps.organizations.models import Membership, Role
from tests.factories import CaseFactory, PatientFactory, UserFactory
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]

PATIENT = "pat.race@home.example"


def test_an_acceptance_while_the_case_closes_waits_for_the_close_and_is_refused(org_a, clinician_a, monkeypatch):
    case = CaseFactory(organization=org_a, patient=PatientFactory(organization=org_a, birth_date=date(1961, 4, 2)),
                       created_by=clinician_a, responsible_clinician=clinician_a)
    invitation, _raw = services.invitation_create(organization=org_a, by=clinician_a, email=PATIENT,
                                                  role=Role.PATIENT, patient=case.patient, case=case)
    user = UserFactory(email=PATIENT)
    real_record, failures, threads = case_services.record, [], []

    def record(**kwargs):  # the close is written, not committed: the acceptance comes now
        if kwargs.get("action") == "case.closed" and not threads:
            threads.append(in_thread_until_blocked(failures, services.invitation_accept,
                                                   invitation=Invitation.objects.get(pk=invitation.pk), user=user))
        return real_record(**kwargs)

    monkeypatch.setattr(case_services, "record", record)
    case_services.case_close(case=case, by=clinician_a)
    threads[0].join(timeout=30)
    assert len(failures) == 1 and isinstance(failures[0], ValidationError), failures
    assert failures[0].code == services.Refusal.CASE_CLOSED
    assert Invitation.objects.get(pk=invitation.pk).accepted_at is None
    assert not Membership.objects.filter(user=user).exists()
