"""The audit page (org admins): search, CSV export and FHIR R4 AuditEvent export.

Each view checks VIEW_AUDIT on the active organization through the policy, and reads through
``apps.audit.selectors.event_search``, the same selector the benchmark times. An export is a
POST (CSRF-checked: a link or an image elsewhere cannot start one) behind a recent second factor,
as other actions that take data out of the portal."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.mfa import asks_step_up, step_up_first
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


def _search(data: QueryDict, org: Any) -> tuple[AuditSearchForm, Any, selectors.AuditFilters]:
    """The search's form, its events and its criteria: no events for a search the form refuses
    (its end before its start, say): a page listing events under such a search would show the
    whole trail as if it were the result asked for."""
    form = AuditSearchForm(data or None)
    if form.is_bound and form.is_valid():
        filters = selectors.AuditFilters.from_data(form.cleaned_data)
    else:
        filters = selectors.AuditFilters()
    events = selectors.event_search(organization=org, filters=filters)
    return form, events.none() if form.errors else events, filters


def _search_params(data: QueryDict) -> QueryDict:
    """The search's own fields of a query or a form (not its page, nor the CSRF token)."""
    params = data.copy()
    for name in ("page", "csrfmiddlewaretoken"):
        params.pop(name, None)
    return params


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    org = _org_for_audit(request)
    form, qs, _filters = _search(request.GET, org)
    return _event_page(request, org, form, qs, request.GET)


def _event_page(request: HttpRequest, org: Any, form: AuditSearchForm, qs: Any, data: QueryDict) -> HttpResponse:
    """The page of a search (400, with the reasons beside the fields, when the search is invalid);
    ``data``: the search asked for (the page's query, or an export's form)."""
    try:
        number = int(data.get("page", "1"))
    except ValueError:
        number = 1
    page = selectors.event_page(qs, number=number, size=PAGE_SIZE)
    rows = [(event, actions.event_label(event.action, event.details),
             actions.actor_label(event.actor_type, event.actor_label), actions.target_label(event.target_type),
             actions.event_detail(event.action, event.details)) for event in page.events]
    params = _search_params(data)
    return render(request, "audit/event_list.html", {
        "organization": org, "form": form, "page": page, "rows": rows, "query": params.urlencode(),
        # the export buttons' form sends the search shown (its fields, hidden)
        "export_params": [(name, value) for name, values in params.lists() for value in values],
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
@require_POST
@asks_step_up()  # step_up_first in _export_search, after the policy
def export_csv(request: HttpRequest) -> HttpResponse:
    org, events, refused = _export_search(request, "csv")
    if refused is not None:
        return refused
    return _export_response(request, _csv_rows(events), "text/csv; charset=utf-8", f"audit-{org.slug}", "csv")


@login_required
@require_POST
@asks_step_up()  # step_up_first in _export_search, after the policy
def export_fhir(request: HttpRequest) -> HttpResponse:
    org, events, refused = _export_search(request, "fhir")
    if refused is not None:
        return refused
    base = request.build_absolute_uri("/fhir/")
    body = fhir.bundle_stream(events, site=request.get_host(), base_url=base, total=None,
                              timestamp=timezone.now().isoformat(), chunk=selectors.EXPORT_BATCH)
    return _export_response(request, body, "application/fhir+json; charset=utf-8", f"audit-{org.slug}", "fhir.json")


def _export_search(request: HttpRequest, fmt: str) -> tuple[Any, Any, HttpResponse | None]:
    """The organization and the events an export of the trail (``fmt``, the search in the POSTed
    form) takes: oldest first, read in batches as the file is sent, those of the trail as it was
    when the export was asked (up to its chain's last event then); its export recorded first,
    naming the search (never the text typed: ``selectors.export_summary``) and how many events
    the file holds. Instead, with nothing recorded: the step-up page when the second factor is
    not recent (it comes back to the audit page, the search kept, to press Export again); the
    audit page with the search's errors when it is not valid (never the whole trail in place of
    the search asked for)."""
    org = _org_for_audit(request)
    params = _search_params(request.POST)
    back = reverse("audit:event_list") + (f"?{params.urlencode()}" if params else "")
    if (asked := step_up_first(request, back=back)) is not None:
        return org, None, asked
    form, qs, filters = _search(request.POST, org)
    if form.errors:
        return org, qs, _event_page(request, org, form, qs, request.POST)
    upto, rows = selectors.export_rows(qs, organization=org)
    record(action=actions.AUDIT_EXPORTED, actor=request.user, organization=org, request=request,
           details={"format": fmt, "search": selectors.export_summary(organization=org, filters=filters),
                    "rows": rows, "up_to_seq": upto})
    return org, selectors.events_in_order(qs, upto=upto, size=selectors.EXPORT_BATCH), None


def _export_response(request: HttpRequest, pieces: Iterator[str], content_type: str, name: str,
                     extension: str) -> StreamingHttpResponse:
    """A streamed download of an export, named ``<name>-<UTC stamp>.<extension>``: an async body
    under ASGI, so that it is sent as it is read, never gathered whole first (apps.core.streaming)."""
    body = streaming.response_body(request, pieces, batch=selectors.EXPORT_BATCH)
    response = StreamingHttpResponse(body, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{extension}"'
    return response
