from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.cache import never_cache
from rest_framework import exceptions as api_exceptions

from apps.core import health
from apps.core.api import is_api_request
from apps.core.forms import UPLOAD_NAME_MAX
from apps.organizations import selectors as org_selectors
from apps.sharing import policy
from apps.sharing import selectors as sharing_selectors
from apps.sharing.policy import Action


def favicon(request: HttpRequest) -> HttpResponse:
    """Where a browser looks when a page names no icon (a PDF, a JSON answer): the static icon.
    Resolved per request, so a missing static manifest cannot stop the URLconf from loading."""
    return redirect(static("img/favicon.svg"), permanent=True)


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up. Touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    """Database, broker and storage reachable: 200, else 503 naming each failing part."""
    parts = health.readiness()
    failing = [name for name, state in parts.items() if state != "ok"]
    body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": parts}
    return JsonResponse(body, status=503 if failing else 200)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    org = request.organization  # type: ignore[attr-defined]
    context: dict[str, object] = {"organization": org}
    if org:
        context["membership"] = request.membership  # type: ignore[attr-defined]
        # on the memberships the request read, as the navigation's links (the page only reads)
        if policy.can(request.user, Action.VIEW_MEMBERS, org, facts=policy.request_facts(request, request.user)):
            context["member_count"] = org_selectors.member_count(user=request.user, organization=org)
    return render(request, "core/dashboard.html", context)


def _anonymous_link_holder(request: HttpRequest) -> policy.LinkHolder | None:
    """The visitor, when they opened anonymous share links and are not signed in
    (``policy.actor_for``): no role and no dashboard, so the error pages speak of the link."""
    actor = policy.actor_for(request)
    return actor if isinstance(actor, policy.LinkHolder) and actor.user is None else None


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The refusal page. An anonymous link's holder (refused a download the link does not allow)
    has no dashboard: the way back is the shared case their link opened, when it is one case."""
    context: dict[str, object] = {}
    if (holder := _anonymous_link_holder(request)) is not None:
        cases = sharing_selectors.cases_of_opened_links(link_ids=holder.link_ids)
        if len(cases) == 1:
            context["shared_case_url"] = reverse("sharing:shared_case", kwargs={"case_id": cases[0]})
    return render(request, "403.html", context, status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form or request sent without a valid security token: the page was open across a sign-out
    or a new sign-in, or the browser blocks cookies. Nothing was done; the page says how to go on,
    in the reader's language. Scripts get JSON (upload.js tells its user to sign in again)."""
    if "text/html" not in request.headers.get("Accept", ""):
        return JsonResponse({"error": "csrf_failed", "detail": _(
            "The request's security check failed (the page was open across a sign-out, or cookies are blocked). "
            "Nothing was done: reload the page and try again.")}, status=403)
    return render(request, "403_csrf.html", status=403)


def _api_bad_request_detail(exception: Exception | None) -> str:
    """Why Django refused an API request before any view read it, in the reader's language."""
    if isinstance(exception, RequestDataTooBig):
        return _("The request body is larger than this server accepts (%(limit)s bytes).") % {
            "limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    if isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        return _("The request has more fields than this server accepts (%(limit)s).") % {
            "limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}
    return str(api_exceptions.ParseError.default_detail)  # DRF's "Malformed request."


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A form Django could not read (MultiPartParserError): in practice a file whose name is too
    long for the part's headers (Django reads at most 1,024 bytes of them), and the whole request is
    lost, so no form can show the error beside its field. The page says so in the reader's language
    and how to go on; scripts get JSON. Under /api/, any other request Django refuses (a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields) is JSON saying why, as the API's own 400s are
    (it was Django's bare HTML page). Other bad requests keep Django's page."""
    if not isinstance(exception, MultiPartParserError):
        if is_api_request(request):
            return JsonResponse({"detail": _api_bad_request_detail(exception)}, status=400)
        return defaults.bad_request(request, exception)
    if "text/html" not in request.headers.get("Accept", ""):
        return JsonResponse({"error": "unreadable_form", "detail": "The form could not be read: a file name may be "
                             f"too long (at most {UPLOAD_NAME_MAX} characters)."}, status=400)
    return render(request, "400_unreadable.html", {"name_max": UPLOAD_NAME_MAX}, status=400)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 404 page; under /api/ (a path no route takes, such as an upload id that is not a UUID)
    the API's own JSON answer, DRF's translated "Not found.", as for an id of no visible row."""
    if is_api_request(request):
        return JsonResponse({"detail": str(api_exceptions.NotFound.default_detail)}, status=404)
    # an anonymous link's holder has no dashboard: what they followed (a study's View) may be gone
    # because the share ended since they opened it, and whom to ask is the link's sender
    return render(request, "404.html", {"link_holder": _anonymous_link_holder(request) is not None}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No context processors and no database: the error may be that the database is gone.
    from django.template import loader

    return HttpResponse(loader.get_template("500.html").render(), status=500)
