"""``manage.py verify_audit [--org SLUG]``: recompute every hash chain of the audit trail.

Exit 0 with the number of events checked when every chain is intact; exit 1 naming the first
event that does not match (its id, time, chain and place), or the chain whose end went missing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.chain import chain_keys, verify_chain
from apps.organizations.models import Organization


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chains; exit 1 naming the first event that does not match."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="check only this organization's chain")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["org"]:
            org = Organization.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"no organization with slug {options['org']!r}", returncode=2)
            keys = [org.pk]
        else:
            keys = chain_keys()
        slugs = dict(Organization.objects.filter(pk__in=keys).values_list("pk", "slug"))
        total = 0
        for key in keys:
            report = verify_chain(key)
            total += report.events
            name = slugs.get(key, "global") if key else "global"
            brk = report.broken
            if brk is not None:
                if brk.event_id is None:
                    where = f"chain {name!r}: {brk.reason}"
                else:
                    where = (f"event id={brk.event_id} at {brk.created_at:%Y-%m-%dT%H:%M:%S.%f%z} "
                             f"(chain {name!r}, seq {brk.seq}): {brk.reason}")
                raise CommandError(f"Audit trail TAMPERED: {where}", returncode=1)
            if options["verbosity"] > 1:
                self.stdout.write(f"chain {name!r}: {report.events} events intact")
        self.stdout.write(self.style.SUCCESS(
            f"Audit trail intact: {total} events in {len(keys)} chain{'s' if len(keys) != 1 else ''} verified."))
