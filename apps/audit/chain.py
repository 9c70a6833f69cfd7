"""The hash chain: canonical serialization, appending under a lock, and verification.

The hash of an event is SHA-256 over ``canonical(...)``: a JSON document with sorted keys and no
spaces that holds every field of the event plus its chain position and the previous hash. The
first event of a chain has ``prev_hash`` = 64 zeros.

Appending locks the chain's head row (``AuditChain``: an UPDATE that claims the next seq and
returns the last hash), so two writers in
one organization wait for each other instead of both extending the same event; the unique
(organization, seq) constraint turns any fork that slipped through into an error. The lock is held
until the surrounding transaction commits: writers of different organizations never wait on
each other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.utils import timezone

if TYPE_CHECKING:
    from apps.audit.models import AuditEvent

GENESIS = "0" * 64
anchor_logger = logging.getLogger("lightbox.audit.anchors")
VERSION = 1

#: the fields covered by the hash, in the order verify_audit reads them
HASHED_FIELDS = ("id", "created_at", "organization_id", "actor_id", "actor_type", "actor_label", "link_ref",
                 "ip", "user_agent", "action", "target_type", "target_id", "case_ref", "study_ref", "outcome",
                 "details", "seq", "prev_hash", "hash")


def _norm(value: Any) -> Any:
    """JSON values as they come back from any database: integral floats as ints (PostgreSQL's
    jsonb prints 1e20 as an integer), dict keys sorted by the dumper."""
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalize_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """What will be stored: plain JSON (UUIDs, dates, decimals become strings)."""
    if not details:
        return {}
    return _norm(json.loads(json.dumps(details, default=str)))


def _when(value: datetime) -> str:
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def canonical(*, created_at: datetime, organization_id: int | None, actor_id: int | None, actor_type: str,
              actor_label: str, link_ref: Any, ip: str | None, user_agent: str, action: str, target_type: str,
              target_id: str, case_ref: Any, study_ref: Any, outcome: str, details: dict[str, Any], seq: int,
              prev_hash: str) -> bytes:
    doc = {
        "v": VERSION, "seq": seq, "prev": prev_hash, "at": _when(created_at), "org": organization_id,
        "actor": actor_id, "actor_type": actor_type, "actor_label": actor_label, "link": _s(link_ref),
        "ip": ip or None, "ua": user_agent, "action": action, "target_type": target_type, "target_id": target_id,
        "case": _s(case_ref), "study": _s(study_ref), "outcome": outcome, "details": _norm(details or {}),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def compute_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical(**fields)).hexdigest()


def _fields_of(event: AuditEvent) -> dict[str, Any]:
    return {
        "created_at": event.created_at, "organization_id": event.organization_id, "actor_id": event.actor_id,
        "actor_type": event.actor_type, "actor_label": event.actor_label, "link_ref": event.link_ref,
        "ip": event.ip, "user_agent": event.user_agent, "action": event.action, "target_type": event.target_type,
        "target_id": event.target_id, "case_ref": event.case_ref, "study_ref": event.study_ref,
        "outcome": event.outcome, "details": event.details, "seq": event.seq, "prev_hash": event.prev_hash,
    }


def append(event: AuditEvent, *, using: str | None = None) -> AuditEvent:
    """Give ``event`` its place in its organization's chain and insert it (one transaction)."""
    from apps.audit.models import AuditChain, AuditEvent

    db = using or router.db_for_write(AuditEvent)
    key = event.organization_id or 0
    event.details = normalize_details(event.details)
    event.ip = AuditEvent._meta.get_field("ip").get_prep_value(event.ip) or None  # as the database returns it
    table = connections[db].ops.quote_name(AuditChain._meta.db_table)
    # Inside the caller's transaction no savepoint is needed: if this fails, so does the caller.
    with transaction.atomic(using=db, savepoint=False), connections[db].cursor() as cur:
        # one round trip takes the chain's lock, claims the next place and reads the last hash
        claim = f"UPDATE {table} SET seq = seq + 1 WHERE key = %s RETURNING seq, last_hash"  # noqa: S608 (model's table)
        cur.execute(claim, [key])
        row = cur.fetchone()
        first_at = None
        if row is None:  # the chain's first event
            if key:
                # the organization's row before the chain's: the order of every writer that locks
                # the row and then records (``_started``)
                first_at = timezone.now()
                _started(db, key, first_at)
            AuditChain.objects.using(db).bulk_create([AuditChain(key=key)], ignore_conflicts=True)
            cur.execute(claim, [key])
            row = cur.fetchone()
        # time is taken under the lock, each event keeping its own recording host's clock: hosts
        # whose clocks disagree (or one stepped back) may put an event before the previous one's
        # time. It is never made to follow the previous event's: one host a day ahead would date
        # every later event of the chain a day ahead (found by review). The date search filters
        # on the time itself (selectors._within_dates), not on a window of seq. The first event
        # has none before it: it keeps the time its organization noted.
        event.created_at = first_at if first_at is not None and row[0] == 1 else timezone.now()
        if row[0] == 1 and key and first_at is None:  # a head there with no event (made by hand)
            _started(db, key, event.created_at)
        event.seq, event.prev_hash = row
        event.hash = compute_hash(**_fields_of(event))
        if connections[db].vendor == "postgresql":
            # the event and the head's new hash in one statement (one round trip, not two). The
            # head's row is joined to the inserted one, so it is updated after the insert, and the
            # head's trigger (migration 0007) finds the event its new hash names.
            insert, params = event._insert_sql(using=db, returning=("id", "hash"))
            cur.execute(f"WITH ins AS ({insert}) UPDATE {table} SET last_hash = ins.hash FROM ins "  # noqa: S608
                        f"WHERE {table}.key = %s RETURNING ins.id", [*params, key])
            event._inserted(pk=cur.fetchone()[0], using=db)
        else:
            event._insert(using=db)
            cur.execute(f"UPDATE {table} SET last_hash = %s WHERE key = %s", [event.hash, key])  # noqa: S608
    return event


def _started(db: str, key: int, when: datetime) -> None:
    """Note on the organization's row when its chain began (``Organization.audit_started_at``):
    outside the audit tables, so that ``verify_audit`` still knows the chain existed once they are
    emptied. Set once, in the first event's transaction (on PostgreSQL never changed after:
    migration audit 0009).

    Called before the chain's head is made (and locked): a writer that locks the organization's
    row and then records (``accounts.services._invitation_refuse_pending``,
    ``organizations.services.membership_update``) and the organization's first event, which
    locked the new head and then updated the row, each waited for the other (a deadlock, one of
    them refused). The conditional UPDATE locks the row only while the note is not set: once it is,
    nothing waits here. Two first events at once: the second waits for the first's commit here,
    then finds the note set and the head made, and takes seq 2."""
    from apps.organizations.models import Organization

    Organization.objects.using(db).filter(pk=key, audit_started_at__isnull=True).update(audit_started_at=when)


# --- verification ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Break:
    """The first event of a chain that does not match (or the head, if events went missing)."""

    chain: int
    event_id: int | None
    created_at: datetime | None
    seq: int | None
    reason: str


@dataclass(frozen=True)
class ChainReport:
    chain: int
    events: int
    broken: Break | None


def verify_rows(chain: int, rows: Iterable[tuple[Any, ...]], head: tuple[int, str] | None) -> ChainReport:
    """Walk one chain's rows (``HASHED_FIELDS`` tuples in seq order) and the head row."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    for row in rows:
        r = dict(zip(HASHED_FIELDS, row, strict=True))
        count += 1
        brk = None
        if r["seq"] != expected_seq:
            brk = f"sequence {r['seq']}, expected {expected_seq} (an event is missing or was inserted)"
        elif r["prev_hash"] != expected_prev:
            brk = "previous hash does not match the event before it"
        else:
            fields = {k: r[k] for k in HASHED_FIELDS if k not in ("id", "hash")}
            if compute_hash(**fields) != r["hash"]:
                brk = "content does not match its hash (the row was changed)"
        if brk:
            return ChainReport(chain, count, Break(chain, r["id"], r["created_at"], r["seq"], brk))
        expected_prev = r["hash"]
        expected_seq += 1
    last_seq = expected_seq - 1
    if head is not None and (head[0] != last_seq or head[1] != expected_prev):
        return ChainReport(chain, count, Break(chain, None, None, head[0],
                                               f"chain head says {head[0]} events but {last_seq} were found "
                                               "(events at the end are missing)"))
    return ChainReport(chain, count, None)


def iter_chain_rows(chain: int, *, chunk_size: int = 5000) -> Iterator[tuple[Any, ...]]:
    from apps.audit.models import AuditEvent

    qs = AuditEvent.objects.filter(organization__isnull=True) if chain == 0 else \
        AuditEvent.objects.filter(organization_id=chain)
    return qs.order_by("seq").values_list(*HASHED_FIELDS).iterator(chunk_size=chunk_size)


def verify_chain(chain: int) -> ChainReport:
    """One chain, its head and its events read in one snapshot (``snapshot``). An organization's
    chain that began (``Organization.audit_started_at``) and has no event or no head any more is
    broken: the audit tables were emptied (a TRUNCATE, or rows deleted past the triggers), which
    the events left alone cannot tell from a chain never begun."""
    from apps.audit.models import AuditChain

    with snapshot():
        head = AuditChain.objects.filter(key=chain).values_list("seq", "last_hash").first()
        report = verify_rows(chain, iter_chain_rows(chain), head)
        if report.broken is None and (report.events == 0 or head is None):
            started = _started_at(chain)
            if started is not None:
                missing = "every event and the chain's head are" if report.events == 0 and head is None else \
                    "every event is" if report.events == 0 else "the chain's head is"
                return ChainReport(chain, report.events, Break(
                    chain, None, None, head[0] if head else None,
                    f"the trail began at {_when(started)} but {missing} missing (the audit tables were emptied)"))
        return report


def _started_at(chain: int) -> datetime | None:
    from apps.organizations.models import Organization

    if not chain:
        return None  # the global chain has no row to note it on: its anchors say it existed
    return Organization.objects.filter(pk=chain).values_list("audit_started_at", flat=True).first()


@contextmanager
def snapshot() -> Iterator[None]:
    """Reads that see the trail as it was at one moment. On a live trail the head and the events
    are otherwise read at different moments: an event appended between the two reads made the
    chain look cut ("head says N events but N+1 were found"). PostgreSQL: a read-only REPEATABLE
    READ transaction (READ COMMITTED takes a new snapshot per statement). SQLite: its transaction
    reads one state of the file. Inside a caller's transaction (tests, a shell) its reads are kept."""
    from apps.audit.models import AuditEvent

    db = router.db_for_read(AuditEvent)
    conn = connections[db]
    if conn.in_atomic_block:
        yield
        return
    with transaction.atomic(using=db):
        if conn.vendor == "postgresql":
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def chain_keys() -> list[int]:
    """Every chain with a head or events, and every organization's whose trail began (its chain
    is checked even when nothing of it is left)."""
    from apps.audit.models import AuditChain, AuditEvent
    from apps.organizations.models import Organization

    keys = set(AuditChain.objects.values_list("key", flat=True))
    keys |= {k or 0 for k in AuditEvent.objects.order_by().values_list("organization_id", flat=True).distinct()}
    keys |= set(Organization.objects.filter(audit_started_at__isnull=False).values_list("pk", flat=True))
    return sorted(keys)


# --- anchors: chain heads kept outside the database ----------------------------------------------
# The hashes are plain SHA-256: whoever can switch the database's trigger off (the table's owner)
# can rewrite a chain from some event on, recompute every later hash and move the head, and the
# chain verifies again. An anchor (a chain's seq and hash, noted at some moment) kept where that
# person cannot reach it (the log shipped off the host, a printout, a ticket) catches it: the event
# at that seq no longer has that hash. ``manage.py verify_audit`` prints one anchor per chain, the
# beat task ``audit_anchors_log_task`` logs them, and ``verify_audit --anchors FILE`` checks a file
# of anchors (any text: lines without the marker, such as the rest of a log, are skipped).

ANCHOR_MARK = "audit-anchor"
_ANCHOR = re.compile(ANCHOR_MARK + r" chain=(\d+) seq=(\d+) sha256=([0-9a-f]{64})\b")


@dataclass(frozen=True)
class Anchor:
    chain: int
    seq: int
    hash: str

    def line(self) -> str:
        return f"{ANCHOR_MARK} chain={self.chain} seq={self.seq} sha256={self.hash}"


def heads() -> list[Anchor]:
    """Each chain's head as it is now, by chain key (organization id, 0 for the global chain)."""
    from apps.audit.models import AuditChain

    return [Anchor(key, seq, last) for key, seq, last in
            AuditChain.objects.filter(seq__gt=0).order_by("key").values_list("key", "seq", "last_hash")]


def parse_anchors(lines: Iterable[str]) -> list[Anchor]:
    """The anchors written anywhere in ``lines`` (log lines around them are skipped)."""
    return [Anchor(int(m[1]), int(m[2]), m[3]) for line in lines for m in _ANCHOR.finditer(line)]


def check_anchor(anchor: Anchor) -> Break | None:
    """None if the event at the anchor's place still has the anchor's hash."""
    from apps.audit.models import AuditEvent

    qs = AuditEvent.objects.filter(organization__isnull=True) if anchor.chain == 0 else \
        AuditEvent.objects.filter(organization_id=anchor.chain)
    row = qs.filter(seq=anchor.seq).values_list("id", "created_at", "hash").first()
    if row is None:
        return Break(anchor.chain, None, None, anchor.seq,
                     f"the anchored event at seq {anchor.seq} is missing (the trail was cut or rewritten)")
    if row[2] != anchor.hash:
        return Break(anchor.chain, row[0], row[1], anchor.seq,
                     "its hash is not the one its anchor noted (the trail was rewritten from here or before)")
    return None


def anchors_log() -> int:
    """Log each chain's head as an anchor line (the beat task ``audit_anchors_log_task``): where the
    logs are shipped off the host, the anchors live where the database's owner cannot rewrite
    them. The lines hold chain ids, counts and hashes only."""
    now = heads()
    for anchor in now:
        anchor_logger.info("%s", anchor.line())
    return len(now)
