"""The audit page (org admins): search, CSV export and FHIR R4 AuditEvent export.

Each view checks VIEW_AUDIT on the active organization through the policy, and reads through
``apps.audit.selectors.event_search``, the same selector the benchmark times."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.audit import actions, fhir, selectors
from apps.audit.forms import AuditSearchForm
from apps.audit.services import record
from apps.core import streaming
from apps.sharing import policy
from apps.sharing.policy import Action

PAGE_SIZE = 50
#: every value the hash covers is a column (``actor_id`` too), so a row's hash can be recomputed
#: from the file alone (docs/architecture.md, "Checking an exported CSV")
CSV_COLUMNS = ("id", "time", "organization", "seq", "actor_type", "actor", "actor_id", "ip", "user_agent", "action",
               "outcome", "target_type", "target_id", "case", "study", "link", "details", "prev_hash", "hash")


def _org_for_audit(request: HttpRequest) -> Any:
    org = getattr(request, "organization", None)
    if not org:
        raise Http404
    policy.require(request.user, Action.VIEW_AUDIT, org, request=request)
    return org


def _search(request: HttpRequest, org: Any) -> tuple[AuditSearchForm, Any]:
    """The search's form and its events: none for a search the form refuses (its end before its
    start, say): a page listing events under such a search would show the whole trail as if it
    were the result asked for."""
    form = AuditSearchForm(request.GET or None)
    if form.is_bound and form.is_valid():
        filters = selectors.AuditFilters.from_data(form.cleaned_data)
    else:
        filters = selectors.AuditFilters()
    events = selectors.event_search(organization=org, filters=filters)
    return form, events.none() if form.errors else events


def _query_without_page(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    org = _org_for_audit(request)
    return _event_page(request, org, *_search(request, org))


def _event_page(request: HttpRequest, org: Any, form: AuditSearchForm, qs: Any) -> HttpResponse:
    """The page of a search (400, with the reasons beside the fields, when the search is invalid)."""
    try:
        number = int(request.GET.get("page", "1"))
    except ValueError:
        number = 1
    page = selectors.event_page(qs, number=number, size=PAGE_SIZE)
    rows = [(event, actions.event_label(event.action, event.details),
             actions.actor_label(event.actor_type, event.actor_label), actions.target_label(event.target_type),
             actions.event_detail(event.action, event.details)) for event in page.events]
    return render(request, "audit/event_list.html", {
        "organization": org, "form": form, "page": page, "rows": rows, "query": _query_without_page(request),
    }, status=400 if form.errors else 200)


def _safe_cell(value: Any) -> str:
    """Text a spreadsheet will not run as a formula: an apostrophe before a cell that begins like
    one, and before one that begins with an apostrophe already, so that removing the first
    apostrophe of any cell beginning with one gives the value back (and its hash checks)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r", "'") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(events: Iterator[Any]) -> Iterator[str]:
    import json

    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for e in events:
        yield writer.writerow([_safe_cell(v) for v in (
            e.pk, e.created_at.isoformat(), e.organization_id, e.seq, e.actor_type, e.actor_label, e.actor_id, e.ip,
            e.user_agent, e.action, e.outcome, e.target_type, e.target_id, e.case_ref, e.study_ref, e.link_ref,
            json.dumps(e.details, sort_keys=True), e.prev_hash, e.hash)])


@login_required
@require_GET
def export_csv(request: HttpRequest) -> HttpResponse:
    org, events, invalid = _export_search(request, "csv")
    if invalid is not None:
        return invalid
    return _export_response(request, _csv_rows(events), "text/csv; charset=utf-8", f"audit-{org.slug}", "csv")


@login_required
@require_GET
def export_fhir(request: HttpRequest) -> HttpResponse:
    org, events, invalid = _export_search(request, "fhir")
    if invalid is not None:
        return invalid
    base = request.build_absolute_uri("/fhir/")
    body = fhir.bundle_stream(events, site=request.get_host(), base_url=base, total=None,
                              timestamp=timezone.now().isoformat(), chunk=selectors.EXPORT_BATCH)
    return _export_response(request, body, "application/fhir+json; charset=utf-8", f"audit-{org.slug}", "fhir.json")


def _export_search(request: HttpRequest, fmt: str) -> tuple[Any, Any, HttpResponse | None]:
    """The organization and the events an export of the trail (``fmt``) takes (oldest first, read in
    batches as the file is sent, up to the export's own event), its export recorded; and, when the
    search asked for is not valid, the audit page with its errors to answer instead (never the
    whole trail in place of the search asked for), nothing recorded."""
    org = _org_for_audit(request)
    form, qs = _search(request, org)
    if form.errors:
        return org, qs, _event_page(request, org, form, qs)
    exported = record(action=actions.AUDIT_EXPORTED, actor=request.user, organization=org, request=request,
                      details={"format": fmt})
    return org, selectors.events_in_order(qs, upto=exported.seq, size=selectors.EXPORT_BATCH), None


def _export_response(request: HttpRequest, pieces: Iterator[str], content_type: str, name: str,
                     extension: str) -> StreamingHttpResponse:
    """A streamed download of an export, named ``<name>-<UTC stamp>.<extension>``: an async body
    under ASGI, so that it is sent as it is read, never gathered whole first (apps.core.streaming)."""
    body = streaming.response_body(request, pieces, batch=selectors.EXPORT_BATCH)
    response = StreamingHttpResponse(body, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{extension}"'
    return response
