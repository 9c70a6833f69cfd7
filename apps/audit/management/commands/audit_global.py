"""``manage.py audit_global --since DATE [--until DATE] [--format csv|json]``: print the global chain.

The global chain holds the audit events of no organization: account events (sign-ins, failed
sign-ins, lockouts, second-factor events) of someone who is not a member of any organization and
was not lately (``apps.audit.services._member_org_ids``: an unknown address being tried, an
account whose memberships all ended long ago), and system events such as a key rotation. No
organization's audit page or export shows it; this is its reader, for operators.

Oldest first, from the start of ``--since`` to the end of ``--until`` (dates in the server's time
zone, ``DJANGO_TIME_ZONE``), with the organization CSV export's columns and its guard against
spreadsheet formulas (its own row function, ``apps.audit.views._csv_rows``); ``json`` gives the
same cells as one array of objects keyed by those columns. The reading is recorded in the global
chain first (``audit.exported``, by the system, its format and dates), and the events printed
stop at that record, as an export stops at its own: a busy chain does not keep it going. Read in
batches (``selectors.events_in_order``), so a long chain is never held in memory whole."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.audit import actions, selectors
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.audit.views import _csv_rows

FORMATS = ("csv", "json")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {text!r}", returncode=2) from exc


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def global_chain(*, since: date, until: date | None = None) -> Any:
    """The events of the global chain (of no organization) from the start of ``since`` to the end
    of ``until``, a query."""
    qs = AuditEvent.objects.filter(organization__isnull=True, created_at__gte=_day_start(since))
    if until is not None:
        qs = qs.filter(created_at__lt=_day_start(until + timedelta(days=1)))
    return qs


def _json_pieces(lines: Iterator[str]) -> Iterator[str]:
    """The CSV export's lines (its header first) as one JSON array of objects keyed by its columns:
    the same cells, guard included, whatever the columns become."""
    rows = csv.reader(lines)
    header = next(rows)
    yield "["
    for n, row in enumerate(rows):
        yield ("," if n else "") + "\n" + json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False)
    yield "\n]\n"


class Command(BaseCommand):
    help = ("Print the global audit chain (events of no organization: account events of people who are no "
            "organization's member, system events), oldest first, with the organization CSV export's columns.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, metavar="YYYY-MM-DD", help="from the start of this day")
        parser.add_argument("--until", metavar="YYYY-MM-DD", help="to the end of this day (default: now)")
        parser.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or json")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _date(options["since"])
        until = _date(options["until"]) if options["until"] else None
        if until is not None and until < since:
            raise CommandError("--until is before --since", returncode=2)
        fmt = options["format"]
        # the reading recorded first, in the chain it reads (figures only): the events printed
        # stop at it
        read = record(action=actions.AUDIT_EXPORTED, actor_label="system:audit_global",
                      details={"format": fmt, "chain": "global", "since": since.isoformat(),
                               "until": until.isoformat() if until else None})
        events = selectors.events_in_order(global_chain(since=since, until=until), upto=read.seq,
                                           size=selectors.EXPORT_BATCH)
        lines = _csv_rows(events)
        for piece in (lines if fmt == "csv" else _json_pieces(lines)):
            self.stdout.write(piece, ending="")
