"""Audit benchmark: search over 1,000,000 events on PostgreSQL, and the cost of record().

    .venv/bin/python bench/audit_search.py [--events 1000000] [--reset] [--verify]
        [--database-url postgres://postgres@127.0.0.1:5432/lightbox_bench]

1. Creates (or reuses) a dedicated database (default ``lightbox_bench``), migrates it, and loads
   ``--events`` audit events with COPY: three organizations (80 % / 15 % / 5 % of the events),
   300 users, 20,000 patients and cases, 50,000 studies, a year of time, about 2 % denials. Every
   row carries a valid hash chain (computed with apps.audit.chain, as record() does), so
   ``verify_audit`` passes on the loaded data (``--verify`` times it).
2. Times the audit page's searches through the page's own selector
   (apps.audit.selectors.event_search + event_page: the rows of page 1 and the capped count) on
   the largest organization, each run 7 times after a warm-up; prints median and max.
3. Times record() (chained: lock the chain head, hash, insert, update the head) against a plain
   single-row INSERT of the same columns, one transaction per event, as in a request; and
   record() from 4 threads in one organization (all wait on one chain head).

Not a test: the figures go to docs/performance.md (audit section).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lightbox_bench"

ACTIONS = [  # (action, weight)
    ("case.viewed", 30), ("viewer.opened", 18), ("viewer.closed", 16), ("download.completed", 8),
    ("grant.download", 3), ("auth.signed_in", 0), ("grant.opened", 6), ("grant.created", 3),
    ("share_link.created", 2), ("grant.revoked", 1), ("grant.extended", 1), ("case.created", 2),
    ("case.closed", 1), ("note.added", 3), ("imaging.study_ingested", 2), ("membership.updated", 0.2),
    ("original_request.created", 0.3), ("deid.exported", 0.5), ("access.denied", 2),
]


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def _ensure_database(url: str, reset: bool) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reset:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _load(n_events: int, seed: int = 7) -> None:
    from django.db import connection

    from apps.accounts.models import User
    from apps.audit.chain import GENESIS, compute_hash
    from apps.audit.models import AuditChain, AuditEvent
    from apps.cases.models import Case, Patient
    from apps.organizations.models import Membership, Organization

    rng = random.Random(seed)
    orgs = [Organization.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench Hospital {i}"})[0]
            for i in range(3)]
    users = []
    for i in range(300):
        user, _ = User.objects.get_or_create(email=f"user{i:03d}@bench.example")
        users.append(user)
        Membership.objects.get_or_create(user=user, organization=orgs[i % 3], defaults={"role": "clinician"})
    if not Patient.objects.filter(organization__in=orgs).exists():
        patients = [Patient(organization=orgs[i % 3], mrn=f"B{i:07d}", name=f"Synthetic Patient {i}")
                    for i in range(20_000)]
        Patient.objects.bulk_create(patients, batch_size=5000)
        patients = list(Patient.objects.filter(organization__in=orgs).order_by("id"))
        Case.objects.bulk_create([Case(organization_id=p.organization_id, patient=p, title=f"Case {p.mrn}")
                                  for p in patients], batch_size=5000)
    cases_by_org: dict[int, list[uuid.UUID]] = {o.pk: [] for o in orgs}
    for org_id, public_id in Case.objects.filter(organization__in=orgs).values_list("organization_id", "public_id"):
        cases_by_org[org_id].append(public_id)
    studies = {c: [uuid.uuid4() for _ in range(rng.choice((1, 2, 3, 4)))] for cs in cases_by_org.values()
               for c in cs}
    users_by_org = {o.pk: [u for i, u in enumerate(users) if i % 3 == k] for k, o in enumerate(orgs)}

    names, weights = zip(*[(a, w) for a, w in ACTIONS if w], strict=True)
    weights_org = [80, 15, 5]
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / n_events
    heads = {o.pk: (0, GENESIS) for o in orgs}
    columns = ["created_at", "organization_id", "actor_id", "actor_type", "actor_label", "link_ref", "action",
               "target_type", "target_id", "case_ref", "study_ref", "outcome", "ip", "user_agent", "details",
               "seq", "prev_hash", "hash"]
    t0 = time.perf_counter()
    buffer = io.StringIO()
    written = 0

    def flush() -> None:
        nonlocal buffer
        buffer.seek(0)
        with connection.cursor() as cur, cur.connection.cursor().copy(
                f"COPY {AuditEvent._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
            while chunk := buffer.read(1 << 20):
                copy.write(chunk)
        buffer = io.StringIO()

    def tsv(value: object) -> str:
        if value is None:
            return r"\N"
        return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    org_choices = rng.choices(orgs, weights=weights_org, k=n_events)
    action_choices = rng.choices(names, weights=weights, k=n_events)
    for i in range(n_events):
        org = org_choices[i]
        action = action_choices[i]
        user = rng.choice(users_by_org[org.pk])
        case_ref = rng.choice(cases_by_org[org.pk])
        study_ref = rng.choice(studies[case_ref]) if action.startswith(("viewer.", "download.", "imaging.",
                                                                       "deid.", "grant.download")) else None
        outcome = "denied" if action == "access.denied" else "allowed"
        details = {"bytes": rng.randint(1, 10**9)} if action.startswith("download.") else {}
        seq, prev = heads[org.pk]
        row = {
            "created_at": start + step * i, "organization_id": org.pk, "actor_id": user.pk, "actor_type": "user",
            "actor_label": user.email, "link_ref": None, "action": action, "target_type": "case",
            "target_id": str(case_ref), "case_ref": case_ref, "study_ref": study_ref, "outcome": outcome,
            "ip": f"10.{i % 250}.{(i // 250) % 250}.{rng.randint(1, 250)}", "user_agent": "Mozilla/5.0 (bench)",
            "details": details, "seq": seq + 1, "prev_hash": prev,
        }
        row["hash"] = compute_hash(**{k: v for k, v in row.items() if k != "hash"})
        heads[org.pk] = (seq + 1, row["hash"])
        buffer.write("\t".join(tsv(json.dumps(row[c]) if c == "details" else
                                   row[c].isoformat() if c == "created_at" else row[c]) for c in columns) + "\n")
        written += 1
        if written % 100_000 == 0:
            flush()
            print(f"  {written:>9,} events loaded ({time.perf_counter() - t0:.0f} s)", flush=True)
    flush()
    for org_id, (seq, last) in heads.items():
        AuditChain.objects.update_or_create(key=org_id, defaults={"seq": seq, "last_hash": last})
    load_s = time.perf_counter() - t0
    with connection.cursor() as cur:
        cur.execute(f"VACUUM ANALYZE {AuditEvent._meta.db_table}")
    print(f"loaded {n_events:,} events in {load_s:.1f} s ({n_events / load_s:,.0f} events/s, hashes included)")


def _time(fn, runs: int = 7) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), max(samples)


def _searches() -> list[tuple[str, float, float, int]]:
    from apps.audit.models import AuditEvent
    from apps.audit.selectors import AuditFilters, event_page, event_search
    from apps.cases.models import Case
    from apps.organizations.models import Organization

    org = Organization.objects.get(slug="bench-0")
    last = AuditEvent.objects.for_org(org.pk).order_by("-seq").values_list("seq", flat=True).first()
    some = AuditEvent.objects.for_org(org.pk).filter(seq=last // 2).get()
    case = Case.objects.get(public_id=some.case_ref)
    study = AuditEvent.objects.for_org(org.pk).filter(study_ref__isnull=False).order_by("seq")[10].study_ref
    day = AuditEvent.objects.for_org(org.pk).filter(seq=last // 4).get().created_at.date()
    cases = [
        ("no filter, newest page", AuditFilters(), 1),
        ("no filter, page 100", AuditFilters(), 100),
        ("user (e-mail)", AuditFilters(user=some.actor_label), 1),
        ("patient (MRN)", AuditFilters(patient=case.patient.mrn), 1),
        ("case (id)", AuditFilters(case=str(case.public_id)), 1),
        ("study (id)", AuditFilters(study=str(study)), 1),
        ("action", AuditFilters(action="download.completed"), 1),
        ("outcome denied", AuditFilters(outcome="denied"), 1),
        ("date range (one day, months ago)", AuditFilters(date_from=day, date_to=day), 1),
        ("user + action + 30 days", AuditFilters(user=some.actor_label, action="case.viewed",
                                                 date_from=day - timedelta(days=30), date_to=day), 1),
        ("rare action (membership.updated)", AuditFilters(action="membership.updated"), 1),
    ]
    results = []
    for label, filters, page in cases:
        box = {}

        def run(filters=filters, page=page, box=box):
            box["page"] = event_page(event_search(organization=org, filters=filters), number=page, size=50)

        median, worst = _time(run)
        results.append((label, median, worst, box["page"].total))
    return results


def _record_overhead(n: int = 2000) -> dict[str, float]:
    from django.db import connection, connections, transaction

    from apps.audit.models import AuditEvent
    from apps.audit.services import record
    from apps.organizations.models import Organization

    org = Organization.objects.get_or_create(slug="bench-record", defaults={"name": "Bench record"})[0]
    table = AuditEvent._meta.db_table
    out: dict[str, float] = {}

    t = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            record(action="case.viewed", organization=org, details={"i": i})
    out["record"] = (time.perf_counter() - t) / n

    # the plain insert goes to a scratch copy of the table (same columns and indexes, no chain,
    # no trigger), so the real chains stay valid
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS audit_plain_insert")
        cur.execute(f"CREATE TABLE audit_plain_insert (LIKE {table} INCLUDING DEFAULTS INCLUDING INDEXES "
                    "INCLUDING IDENTITY)")
    sql = ("INSERT INTO audit_plain_insert (created_at, organization_id, actor_type, actor_label, action, target_type, "
           "target_id, outcome, user_agent, details, seq, prev_hash, hash) "
           "VALUES (now(), %s, 'system', 'system', 'case.viewed', '', '', 'allowed', '', %s, %s, %s, %s)")
    t = time.perf_counter()
    for i in range(n):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, [org.pk, json.dumps({"i": i}), i + 1, "0" * 64, "0" * 64])
    out["plain"] = (time.perf_counter() - t) / n

    # One event per transaction on the real 1M-row table with all its indexes, each transaction
    # rolled back (so the plain rows never touch the chains, and no commit's fsync blurs the
    # figure): the statements' cost, which is what record() adds to a request's own transaction.
    # (Many events in ONE transaction would measure PostgreSQL walking the head row's growing
    # chain of versions instead: a request records one to three events.)
    real_sql = sql.replace("audit_plain_insert", table)
    t = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            record(action="case.viewed", organization=org, details={"i": i})
            transaction.set_rollback(True)
    out["record_in_txn"] = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(n):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(real_sql, [org.pk, json.dumps({"i": i}), 10_000_000 + i, "0" * 64, "0" * 64])
            transaction.set_rollback(True)
    out["plain_in_txn"] = (time.perf_counter() - t) / n
    from apps.audit.chain import compute_hash

    fields = dict(created_at=datetime.now(UTC), organization_id=org.pk, actor_id=1, actor_type="user",
                  actor_label="someone@bench.example", link_ref=None, ip="10.0.0.1", user_agent="Mozilla/5.0",
                  action="case.viewed", target_type="case", target_id=str(uuid.uuid4()), case_ref=uuid.uuid4(),
                  study_ref=None, outcome="allowed", details={"i": 1}, seq=1, prev_hash="0" * 64)
    t = time.perf_counter()
    for _ in range(n):
        compute_hash(**fields)
    out["hash_only"] = (time.perf_counter() - t) / n

    threads, per = 4, n // 4
    barrier = threading.Barrier(threads)

    def write() -> None:
        barrier.wait()
        for i in range(per):
            record(action="case.viewed", organization_id=org.pk, details={"i": i})
        connections.close_all()

    workers = [threading.Thread(target=write) for _ in range(threads)]
    t = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out["threads_same_org"] = (time.perf_counter() - t) / (threads * per)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--reset", action="store_true", help="drop and recreate the bench database")
    parser.add_argument("--verify", action="store_true", help="also time verify_audit over the loaded chains")
    parser.add_argument("--no-search", action="store_true", help="skip the searches (record() figures only)")
    args = parser.parse_args()

    _ensure_database(args.database_url, args.reset)
    _setup_django(args.database_url)
    from django.core.management import call_command

    from apps.audit.models import AuditEvent

    call_command("migrate", verbosity=0)
    have = AuditEvent.objects.filter(organization__slug__in=["bench-0", "bench-1", "bench-2"]).count()
    if have < args.events:
        if have:
            sys.exit(f"the bench database holds {have:,} events, fewer than {args.events:,}: use --reset")
        print(f"loading {args.events:,} events into {args.database_url.rsplit('/', 1)[1]} ...", flush=True)
        _load(args.events)
    else:
        print(f"reusing {have:,} events already loaded")

    if not args.no_search:
        print("\nAudit page searches (largest organization, page of 50 + count capped at 10,000):")
        print(f"  {'search':<36} {'median ms':>10} {'max ms':>8} {'matches':>9}")
        for label, median, worst, total in _searches():
            print(f"  {label:<36} {median * 1000:>10.1f} {worst * 1000:>8.1f} {total:>9,}")

    print("\nrecord() against a plain INSERT (one transaction per event):")
    r = _record_overhead()
    for key, label in (("plain", "plain INSERT, own commit"), ("record", "record() (chained), own commit"),
                       ("threads_same_org", "record(), 4 threads, one organization"),
                       ("plain_in_txn", "plain INSERT, no commit (1M table)"),
                       ("record_in_txn", "record(), no commit (1M table)"),
                       ("hash_only", "canonical JSON + SHA-256 alone")):
        print(f"  {label:<44} {r[key] * 1000:>7.3f} ms/event {1 / r[key]:>9,.0f} events/s")
    print(f"  chaining overhead: {(r['record'] - r['plain']) * 1000:.3f} ms per event with a commit each, "
          f"{(r['record_in_txn'] - r['plain_in_txn']) * 1000:.3f} ms without the commit")

    if args.verify:
        from io import StringIO

        out = StringIO()
        t = time.perf_counter()
        call_command("verify_audit", stdout=out)
        took = time.perf_counter() - t
        print(f"\nverify_audit: {out.getvalue().strip()} in {took:.1f} s")


if __name__ == "__main__":
    main()
