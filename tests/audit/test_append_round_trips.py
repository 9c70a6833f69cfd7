"""What one audit event costs the database, and that the cheaper path records the same thing.

Every request, sign-in and task records events, so each round trip of ``chain.append`` counts
(a profiled test run spent 38 s of its 1,870 test-seconds there). On PostgreSQL an event into a
chain that exists takes two statements: the head's claim (which locks the chain and returns the
previous hash) and the INSERT with the head's new hash in one statement; SQLite keeps the INSERT
and the head's UPDATE apart (three). An account event written into several organizations' chains
(``record``'s fan-out) is worked out once and inserted once per chain."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models.signals import post_save

from apps.audit import services
from apps.audit.chain import verify_chain
from apps.audit.models import AuditChain, AuditEvent
from apps.audit.services import record
from apps.organizations.models import Role
from tests.factories import CaseFactory, MembershipFactory, member

pytestmark = pytest.mark.django_db

#: the claim, then the INSERT and the head's hash together (PostgreSQL) or apart (SQLite)
STATEMENTS = 2 if connection.vendor == "postgresql" else 3

#: what two copies of one event share (the rest is its place in its chain)
CONTENT = ("actor_id", "actor_type", "actor_label", "link_ref", "action", "target_type", "target_id", "case_ref",
           "study_ref", "outcome", "ip", "user_agent", "details")


def test_an_event_costs_the_claim_and_one_insert(org_a, admin_a, django_assert_num_queries):
    case = CaseFactory(organization=org_a)
    record(action="case.created", actor=admin_a, organization=org_a, target=case)  # the chain's head exists
    with django_assert_num_queries(STATEMENTS):
        event = record(action="case.viewed", actor=admin_a, organization=org_a, case=case,
                       details={"n": 2, "ids": [1, 2]})
    assert event.pk is not None and not event._state.adding and event._state.db == "default"
    stored = AuditEvent.objects.get(pk=event.pk)
    assert [getattr(stored, f) for f in (*CONTENT, "seq", "prev_hash", "hash", "created_at")] == \
        [getattr(event, f) for f in (*CONTENT, "seq", "prev_hash", "hash", "created_at")]
    assert (stored.seq, stored.case_ref) == (2, case.public_id)
    head = AuditChain.objects.get(key=org_a.pk)
    assert (head.seq, head.last_hash) == (2, event.hash)  # the head names the new event
    assert verify_chain(org_a.pk).broken is None


def test_the_insert_still_says_it_saved(org_a):
    seen: list[tuple[int, bool]] = []

    def receiver(sender, instance, created, **kwargs):
        seen.append((instance.pk, created))

    post_save.connect(receiver, sender=AuditEvent)
    try:
        event = record(action="test.one", organization=org_a)
    finally:
        post_save.disconnect(receiver, sender=AuditEvent)
    assert seen == [(event.pk, True)]


def test_an_account_event_is_worked_out_once_for_all_its_chains(org_a, org_b, monkeypatch,
                                                                django_assert_num_queries):
    person = member(org_a, Role.CLINICIAN, email="two.orgs@alpha.example")
    MembershipFactory(user=person, organization=org_b, role=Role.CLINICIAN)
    record(action="test.start", organization=org_a)
    record(action="test.start", organization=org_b)
    worked_out: list[object] = []
    refs_of = services._refs_of
    monkeypatch.setattr(services, "_refs_of", lambda target, **kw: worked_out.append(target) or refs_of(target, **kw))
    # the memberships, then one event per chain
    with django_assert_num_queries(1 + 2 * STATEMENTS):
        first = record(action="auth.mfa_enrolled", actor=person, target=person, details={"device": 7})
    assert worked_out == [person]
    events = list(AuditEvent.objects.filter(action="auth.mfa_enrolled").order_by("organization_id"))
    assert [e.organization_id for e in events] == sorted([org_a.pk, org_b.pk])
    assert first.pk == events[0].pk
    assert [getattr(events[0], f) for f in CONTENT] == [getattr(events[1], f) for f in CONTENT]
    assert (events[0].target_id, events[0].details) == (str(person.public_id), {"device": 7})
    assert all(verify_chain(key).broken is None for key in (org_a.pk, org_b.pk))
