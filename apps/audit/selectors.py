"""Reads of the audit trail: the audit page's search (also used by its exports and by
bench/audit_search.py) and the case page's access history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import CharField, Func, Q
from django.utils import timezone

from apps.audit.actions import ACCESS_ACTIONS
from apps.audit.models import AuditEvent

if TYPE_CHECKING:
    from apps.audit.models import AuditEventQuerySet
    from apps.organizations.models import Organization

#: the page counts at most this many matches ("more than 10,000"): an exact count of a million
#: rows is work nobody reads
COUNT_CAP = 10_000
#: the largest row offset a query may skip to: OFFSET is a signed 64-bit integer in PostgreSQL and
#: SQLite, and a larger one fails the query ("bigint out of range", "datatype mismatch")
OFFSET_MAX = 2**63 - 1
#: an export reads its events this many at a time, each batch one query
EXPORT_BATCH = 1000


@dataclass
class AuditFilters:
    """What the audit page searches by. Text criteria are resolved to ids within the organization."""

    user: str = ""          # an e-mail address, or part of one
    patient: str = ""       # a medical record number (exact) or part of a name, or a patient id
    case: str = ""          # a case id (UUID) or part of a title
    study: str = ""         # a study id (UUID)
    action: str = ""
    outcome: str = ""
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> AuditFilters:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v not in (None, "")})


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class UUIDText(Func):
    """A UUID column as the text ``str(uuid)`` gives (what ``target_id`` holds), in SQL: PostgreSQL
    casts its uuid type to that form; SQLite stores 32 hex digits, which get their dashes back.
    For a column (its SQL is repeated, it has no parameters)."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="CAST(%(expressions)s AS text)", **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        parts = "||'-'||".join(f"substr(%(expressions)s, {start}, {length})"
                               for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))
        return self.as_sql(compiler, connection, template=f"lower({parts})", **extra_context)


def event_search(*, organization: Organization, filters: AuditFilters) -> AuditEventQuerySet:
    """The organization's events matching ``filters``, newest first. The caller checked
    VIEW_AUDIT; rows of other organizations are never among them (``for_org``)."""
    from apps.cases.models import Case

    # Text criteria become subqueries, never capped lists: a cap would let rows matching the term
    # elsewhere (other organizations' accounts, other patients) push out the ones searched for,
    # and the search would answer "nothing" for events that are there.
    qs = AuditEvent.objects.for_org(organization.pk)
    if filters.user:
        qs = qs.filter(actor_id__in=_users_matching(filters.user).values("pk"))
    if filters.patient:
        patients = _patients_matching(organization, filters.patient)
        case_refs = Case.objects.for_org(organization.pk).filter(patient__in=patients.values("pk"))
        patient_refs = patients.annotate(ref=UUIDText("public_id")).values("ref")
        qs = qs.filter(Q(case_ref__in=case_refs.values("public_id")) | _boards_of(organization, case_refs)
                       | Q(target_type="patient", target_id__in=patient_refs))
    if filters.case:
        as_id = _uuid(filters.case)
        cases = _cases_matching(organization, filters.case)
        qs = qs.filter((Q(case_ref=as_id) if as_id else Q(case_ref__in=cases.values("public_id")))
                       | _boards_of(organization, cases))
    if filters.study:
        as_id = _uuid(filters.study)
        qs = qs.filter(study_ref=as_id) if as_id else qs.none()
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.outcome:
        qs = qs.filter(outcome=filters.outcome)
    if filters.date_from or filters.date_to:
        qs = _within_dates(qs, filters.date_from, filters.date_to)
    return qs.order_by("-seq")


def _users_matching(term: str) -> Any:
    """The accounts a search's user criterion names: an e-mail address, or part of one."""
    from apps.accounts.models import User

    return User.objects.filter(email__icontains=term.strip())


def _patients_matching(organization: Organization, term: str) -> Any:
    """The organization's patients a search's patient criterion names: a medical record number
    (exact), part of a name, or a patient's public id."""
    from apps.cases.models import Patient, mrn_matches

    term = term.strip()
    as_id = _uuid(term)
    patients = Patient.objects.for_org(organization.pk)
    return patients.filter(public_id=as_id) if as_id else patients.filter(mrn_matches(term) | Q(name__icontains=term))


def _cases_matching(organization: Organization, term: str) -> Any:
    """The organization's cases a search's case criterion names: a case's public id or part of a title."""
    from apps.cases.models import Case

    as_id = _uuid(term)
    cases = Case.objects.for_org(organization.pk)
    return cases.filter(public_id=as_id) if as_id else cases.filter(title__icontains=term.strip())


#: an export's event names at most this many of the accounts, patients or cases a criterion matched
EXPORT_SUMMARY_IDS = 20


def export_summary(*, organization: Organization, filters: AuditFilters) -> dict[str, Any]:
    """What an export's audit event says about the search it exported, with nothing that names a
    person: action and outcome (the vocabulary), the dates, and for a criterion typed as text the
    public ids of the accounts (members of the organization), patients or cases it matched (at most
    EXPORT_SUMMARY_IDS, and how many), or the study's id; never the text typed (an e-mail address,
    a medical record number, a name, a case's title). No criterion: ``{}``, the whole trail."""
    from apps.organizations.models import Membership

    def ids(qs: Any) -> dict[str, Any]:
        return {"ids": [str(i) for i in qs.order_by("pk").values_list("public_id", flat=True)[:EXPORT_SUMMARY_IDS]],
                "matched": qs.count()}

    summary: dict[str, Any] = {}
    if filters.user:
        members = Membership.objects.filter(organization_id=organization.pk).values("user_id")
        summary["user"] = ids(_users_matching(filters.user).filter(pk__in=members))
    if filters.patient:
        summary["patient"] = ids(_patients_matching(organization, filters.patient))
    if filters.case:
        summary["case"] = ids(_cases_matching(organization, filters.case))
    if filters.study:
        as_id = _uuid(filters.study)
        summary["study"] = str(as_id) if as_id else "not an id"
    if filters.action:
        summary["action"] = filters.action
    if filters.outcome:
        summary["outcome"] = filters.outcome
    if filters.date_from:
        summary["date_from"] = filters.date_from.isoformat()
    if filters.date_to:
        summary["date_to"] = filters.date_to.isoformat()
    return summary


def export_rows(qs: AuditEventQuerySet, *, organization: Organization) -> tuple[int, int]:
    """(the last seq of the organization's chain now, how many events of ``qs`` are at or before
    it): what an export about to begin will hold (``events_in_order(qs, upto=...)``), to be named
    in its own audit event before the first row is sent."""
    from apps.audit.models import AuditChain

    upto = AuditChain.objects.filter(key=organization.pk).values_list("seq", flat=True).first() or 0
    return upto, qs.filter(seq__lte=upto).order_by().count()


def _boards_of(organization: Organization, cases: Any) -> Q:
    """The events about the tumor boards that hold one of ``cases`` (a queryset): a board's own
    events (created, edited, started, ended, a refusal on its page) name the board, not a case, as
    it holds several; the grants its meeting gives carry their case (and the board's id in their
    details). A started board's cases no longer change, so its events are found by each of them."""
    from apps.cases.models import BoardSession

    boards = (BoardSession.objects.for_org(organization.pk).filter(cases__in=cases.values("pk"))
              .annotate(ref=UUIDText("public_id")).values("ref"))
    return Q(target_type="boardsession", target_id__in=boards)


def _within_dates(qs: AuditEventQuerySet, first: date | None, last: date | None) -> AuditEventQuerySet:
    """Events from the start of ``first`` to the end of ``last``, by the time each event carries.

    On its time alone, never through a window of ``seq`` derived from it: an event's time is its
    recording host's clock (``chain.append``), which may put it before the previous event of its
    chain (two hosts a second apart, an NTP step back) or far ahead (a host a day fast); a seq
    window would miss such an event for the day it carries (found by review). The
    (organization, created_at) index can serve the time condition."""
    if first:
        qs = qs.filter(created_at__gte=_day_start(first))
    if last:
        qs = qs.filter(created_at__lt=_day_start(last + timedelta(days=1)))
    return qs


@dataclass
class EventPage:
    events: list[AuditEvent]
    number: int
    size: int
    total: int              # capped at COUNT_CAP + 1
    has_next: bool
    more: bool = field(default=False)   # more than COUNT_CAP matches

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def start(self) -> int:
        return (self.number - 1) * self.size + 1 if self.events else 0

    @property
    def end(self) -> int:
        return self.start + len(self.events) - 1 if self.events else 0

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1


def event_page(qs: AuditEventQuerySet, *, number: int = 1, size: int = 50) -> EventPage:
    """One page of a search: the rows (one query, LIMIT size + 1) and a count capped at COUNT_CAP.
    A page number past any the database can skip to (``?page=99999999999999999999``) is the last
    such page, found empty like any page past the end."""
    number = min(max(1, number), (OFFSET_MAX - size - 1) // size + 1)
    offset = (number - 1) * size
    rows = list(qs.select_related("actor")[offset:offset + size + 1])
    total = qs.order_by()[:COUNT_CAP + 1].count()
    return EventPage(events=rows[:size], number=number, size=size, total=min(total, COUNT_CAP),
                     has_next=len(rows) > size, more=total > COUNT_CAP)


def events_in_order(qs: AuditEventQuerySet, *, upto: int, size: int = EXPORT_BATCH) -> Iterator[AuditEvent]:
    """The events of ``qs`` (a search of one organization's trail) oldest first, up to seq ``upto``
    (the trail as it was when the export began: a busy trail does not keep an export going), read
    ``size`` at a time, each batch its own query resuming after the last seq read (``seq > last
    ORDER BY seq LIMIT size``): no cursor held open between batches, which under ASGI are read
    while the response is being sent, and no OFFSET that grows slower page by page."""
    last = 0
    while True:
        batch = list(qs.filter(seq__gt=last, seq__lte=upto).order_by("seq")[:size])
        yield from batch
        if len(batch) < size:
            return
        last = batch[-1].seq


def case_access_history(case: Any, *, limit: int = 50) -> list[AuditEvent]:
    """Who saw or downloaded this case's studies, and when: the case's access events (case page
    views, viewer sessions, downloads, opened shares, exports), newest first. The caller decides
    who may see this list (policy, e.g. MANAGE_CASE or VIEW_AUDIT)."""
    return list(AuditEvent.objects.for_org(case.organization_id)
                .filter(case_ref=case.public_id, action__in=ACCESS_ACTIONS)
                .select_related("actor").order_by("-seq")[:limit])
