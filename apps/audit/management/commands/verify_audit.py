"""``manage.py verify_audit [--org SLUG] [--anchors FILE]``: recompute every hash chain of the audit trail.

Exit 0 with the number of events checked when every chain is intact, followed by one anchor line
per chain (``audit-anchor chain=<id> seq=<n> sha256=<hash>``: keep them outside the database);
exit 1 naming the first event that does not match (its id, time, chain and place), the chain
whose end went missing, an organization's chain that began and is gone (the audit tables
emptied: ``Organization.audit_started_at``), or an anchor of ``--anchors FILE`` whose event no
longer has its hash.
The heads and the events are read in one snapshot, so a trail in use verifies as it was then.

On PostgreSQL, TRUNCATE of the audit tables, changing an organization's ``audit_started_at`` and
deleting an organization whose trail began are refused unless the session sets
``lightbox.audit_maintenance = on``: an operator's switch, not a barrier against whoever holds the
application's database role, who can set it and wipe the trail and its note alike. Only anchors
kept off the host prove what was there. On SQLite (the embedded default) none of these triggers
exist, and the command says so before it verifies (``check --deploy`` refuses it: lightbox.E001)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.chain import Anchor, Break, chain_keys, check_anchor, heads, parse_anchors, snapshot, verify_chain
from apps.core.checks import audit_database_vendor
from apps.organizations.models import Organization

NO_DATABASE_PROTECTION = (
    "Warning: the audit trail is in a {vendor} database, which has no database-level protection (the triggers "
    "refusing changes to audit events and TRUNCATE exist only on PostgreSQL). A changed event still breaks its "
    "chain, but a trail rewritten or emptied whole is caught only by anchors kept off the host (--anchors).")


class Command(BaseCommand):
    help = ("Recompute the audit trail's hash chains (and check anchors noted earlier); exit 1 naming the first "
            "event that does not match. Without --anchors a trail wiped by someone holding the database role "
            "(who may set lightbox.audit_maintenance, an operator's switch, not a barrier) can verify: keep the "
            "anchor lines off the host and check them with --anchors.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="check only this organization's chain")
        parser.add_argument("--anchors", metavar="FILE", type=Path,
                            help="a file holding anchor lines printed or logged earlier (other lines are "
                                 "skipped, so a log file will do): each anchored event must still have its hash")

    def handle(self, *args: Any, **options: Any) -> None:
        vendor = audit_database_vendor()
        if vendor != "postgresql":
            self.stderr.write(self.style.WARNING(NO_DATABASE_PROTECTION.format(vendor=vendor)))
        anchors = self._anchors(options["anchors"])
        if options["org"]:
            org = Organization.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"no organization with slug {options['org']!r}", returncode=2)
            keys = [org.pk]
        else:
            keys = chain_keys()
        slugs = dict(Organization.objects.filter(pk__in=keys + [a.chain for a in anchors]).values_list("pk", "slug"))
        total = 0
        with snapshot():
            for key in keys:
                report = verify_chain(key)
                total += report.events
                if report.broken is not None:
                    self._tampered(report.broken, slugs)
                if options["verbosity"] > 1:
                    self.stdout.write(f"chain {self._name(key, slugs)!r}: {report.events} events intact")
            # without --org every anchor counts: a chain whose events and head are all gone is
            # not among chain_keys, and its anchors say it existed
            checked = [a for a in anchors if a.chain in keys] if options["org"] else anchors
            for anchor in checked:
                if (brk := check_anchor(anchor)) is not None:
                    self._tampered(brk, slugs)
            now = [a for a in heads() if a.chain in keys]
        self.stdout.write(self.style.SUCCESS(
            f"Audit trail intact: {total} events in {len(keys)} chain{'s' if len(keys) != 1 else ''} verified"
            + (f", {len(checked)} anchor{'s' if len(checked) != 1 else ''} matched." if anchors else ".")))
        for anchor in now:
            self.stdout.write(anchor.line())

    def _anchors(self, path: Path | None) -> list[Anchor]:
        if path is None:
            return []
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                anchors = parse_anchors(f)
        except OSError as exc:
            raise CommandError(f"cannot read the anchors file: {exc.strerror}", returncode=2) from None
        if not anchors:
            raise CommandError(f"no anchor lines in {path} (lines like 'audit-anchor chain=1 seq=2 sha256=...')",
                               returncode=2)
        return anchors

    @staticmethod
    def _name(key: int, slugs: dict[int, str]) -> str:
        return slugs.get(key, f"organization {key}") if key else "global"

    def _tampered(self, brk: Break, slugs: dict[int, str]) -> None:
        name = self._name(brk.chain, slugs)
        if brk.event_id is None:
            where = f"chain {name!r}: {brk.reason}"
        else:
            where = (f"event id={brk.event_id} at {brk.created_at:%Y-%m-%dT%H:%M:%S.%f%z} "
                     f"(chain {name!r}, seq {brk.seq}): {brk.reason}")
        raise CommandError(f"Audit trail TAMPERED: {where}", returncode=1)
