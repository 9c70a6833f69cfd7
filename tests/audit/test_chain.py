"""The trail is hash-chained per organization and cannot be changed through the ORM."""

from __future__ import annotations

import hashlib
import threading
import uuid

import pytest
from django.db import connection, connections

from apps.audit.chain import GENESIS, canonical, compute_hash, verify_chain
from apps.audit.models import ActorType, AppendOnlyError, AuditChain, AuditEvent
from apps.audit.services import record
from tests.factories import AuditEventFactory, CaseFactory, UserFactory

pytestmark = pytest.mark.django_db


def _recompute(event: AuditEvent) -> str:
    return compute_hash(created_at=event.created_at, organization_id=event.organization_id, actor_id=event.actor_id,
                        actor_type=event.actor_type, actor_label=event.actor_label, link_ref=event.link_ref,
                        ip=event.ip, user_agent=event.user_agent, action=event.action,
                        target_type=event.target_type, target_id=event.target_id, case_ref=event.case_ref,
                        study_ref=event.study_ref, outcome=event.outcome, details=event.details, seq=event.seq,
                        prev_hash=event.prev_hash)


def test_events_chain_per_organization_and_globally(org_a, org_b, admin_a):
    a1 = record(action="test.one", actor=admin_a, organization=org_a, details={"n": 1})
    b1 = record(action="test.one", organization=org_b)
    loner = UserFactory()  # no membership: their sign-ins stay in the global chain
    g1 = record(action="auth.signed_in", actor=loner)
    a2 = record(action="test.two", actor=admin_a, organization_id=org_a.pk, details={"n": 2.0, "ids": [1, 2]})
    g2 = record(action="auth.signed_out", actor=loner)
    assert (a1.seq, a1.prev_hash) == (1, GENESIS)
    assert (a2.seq, a2.prev_hash) == (2, a1.hash)
    assert (b1.seq, b1.prev_hash) == (1, GENESIS)
    assert (g1.seq, g2.seq, g2.prev_hash) == (1, 2, g1.hash)
    for event in AuditEvent.objects.all():  # as read back from the database
        assert event.hash == _recompute(event)
        assert len(event.hash) == 64
    assert AuditChain.objects.get(key=org_a.pk).last_hash == a2.hash
    assert AuditChain.objects.get(key=0).seq == 2
    for key in (org_a.pk, org_b.pk, 0):
        assert verify_chain(key).broken is None


def test_hash_covers_every_field(org_a, admin_a):
    """Changing any single field of the canonical form changes the hash."""
    case = CaseFactory(organization=org_a)
    base = dict(created_at=AuditEvent._meta.get_field("created_at").default(), organization_id=org_a.pk,
                actor_id=admin_a.pk, actor_type="user", actor_label="a@b.example", link_ref=uuid.uuid4(),
                ip="10.0.0.1", user_agent="UA", action="case.viewed", target_type="case",
                target_id=str(case.public_id), case_ref=case.public_id, study_ref=uuid.uuid4(), outcome="allowed",
                details={"bytes": 10}, seq=3, prev_hash="a" * 64)
    digest = compute_hash(**base)
    assert digest == hashlib.sha256(canonical(**base)).hexdigest()
    changed = dict(organization_id=org_a.pk + 1, actor_id=admin_a.pk + 1, actor_type="link", actor_label="x",
                   link_ref=uuid.uuid4(), ip="10.0.0.2", user_agent="UA2", action="case.closed", target_type="grant",
                   target_id="other", case_ref=uuid.uuid4(), study_ref=uuid.uuid4(), outcome="denied",
                   details={"bytes": 11}, seq=4, prev_hash="b" * 64)
    for name, value in changed.items():
        assert compute_hash(**{**base, name: value}) != digest, name
    from datetime import timedelta
    assert compute_hash(**{**base, "created_at": base["created_at"] + timedelta(microseconds=1)}) != digest


def test_actor_types_and_link_reference(org_a, admin_a):
    link_id = uuid.uuid4()
    assert record(action="x", actor=admin_a, organization=org_a).actor_type == ActorType.USER
    assert record(action="x", organization=org_a).actor_type == ActorType.SYSTEM
    linked = record(action="x", organization=org_a, actor_label=f"link:{link_id}")
    assert (linked.actor_type, linked.link_ref) == (ActorType.LINK, link_id)
    failed = record(action="auth.sign_in_failed", outcome="denied", actor_label="anonymous")
    assert failed.actor_type == ActorType.ANONYMOUS
    assert record(action="x", actor=admin_a, organization=org_a).actor_label == admin_a.email


def test_model_refuses_update_and_delete(org_a):
    event = record(action="test.one", organization=org_a)
    event.action = "test.changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="test.changed")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_create([AuditEvent(action="x")])
    assert AuditEvent.objects.get(pk=event.pk).action == "test.one"


def test_direct_create_is_chained_too(org_a):
    """The factory (AuditEvent.objects.create) goes through the chain: there is no unchained path."""
    first = AuditEventFactory(organization=org_a)
    second = AuditEventFactory(organization=org_a)
    assert second.prev_hash == first.hash
    assert verify_chain(org_a.pk).broken is None


def test_deleting_a_user_keeps_their_events(org_a, admin_a):
    from tests.factories import member

    user = member(org_a, "clinician", email="leaving@alpha.example")
    event = record(action="case.viewed", actor=user, organization=org_a)
    user.delete()
    kept = AuditEvent.objects.get(pk=event.pk)
    assert (kept.actor_id, kept.actor_label) == (event.actor_id, "leaving@alpha.example")
    assert verify_chain(org_a.pk).broken is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers: PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_do_not_fork_the_chain():
    from tests.factories import OrganizationFactory

    org = OrganizationFactory(slug="race")
    per_thread, threads = 25, 4
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                record(action="test.race", organization_id=org.pk, details={"t": n, "i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    seqs = list(AuditEvent.objects.filter(organization=org).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, per_thread * threads + 1))
    assert verify_chain(org.pk).broken is None
