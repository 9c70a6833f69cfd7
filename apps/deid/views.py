"""De-identified export pages: a study's exports (and the form that starts one), one export's
progress and per-file report, its progress as JSON (what the page polls while it runs), and its
download (a zip, resumable with Range).

Every view needs ``export_deidentified`` on the study or export (``policy.require``: refusals
are recorded). Exports are staff rows: one outside the user's organizations, or seen only
through a grant, is a 404 (the refusal recorded when it exists).
"""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from apps.audit import actions as audit_actions
from apps.audit.services import record
from apps.core.pagination import page_of
from apps.deid import services
from apps.deid.models import LABEL, DeidExport, Outcome, State
from apps.imaging.models import Study
from apps.imaging.services import blob_integrity_failed
from apps.organizations.switching import switch_first
from apps.renditions.views import package_response  # one download transport for every package
from apps.sharing import policy
from apps.sharing.policy import Action

#: a study's exports per page, and an export's per-image report lines per page
EXPORTS_PAGE_SIZE = 50
FILES_PAGE_SIZE = 500


def _refuse(request: HttpRequest, obj) -> None:
    """404 for what the user may not see; the refusal is recorded when the object exists."""
    if obj is not None:
        try:
            policy.require(request.user, Action.EXPORT_DEIDENTIFIED, obj, request=request)
        except PermissionDenied:
            pass
    raise Http404


def _study(request: HttpRequest, study_id: UUID) -> Study:
    study = (Study.objects.visible_to(request.user).select_related("organization", "case", "case__patient")
             .filter(public_id=study_id).first())
    if study is None:
        _refuse(request, Study.objects.filter(public_id=study_id).first())
    policy.require(request.user, Action.EXPORT_DEIDENTIFIED, study, request=request)
    return study


def _export(request: HttpRequest, export_id: UUID) -> DeidExport:
    export = (DeidExport.objects.visible_to(request.user).select_related("study", "study__case", "created_by")
              .filter(public_id=export_id).first())
    if export is None:
        _refuse(request, DeidExport.objects.filter(public_id=export_id).select_related("study").first())
    policy.require(request.user, Action.EXPORT_DEIDENTIFIED, export, request=request)
    return export


@login_required
@policy.serves(Action.EXPORT_DEIDENTIFIED)
@require_http_methods(["GET", "POST"])
def study_exports(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """A study's de-identified exports, and (POST) a new one with the pseudonym given."""
    study = _study(request, study_id)
    # another of the person's organizations' study: exported once it is the active one
    if (switch := switch_first(request, study, Action.EXPORT_DEIDENTIFIED, then=request.path)) is not None:
        return switch
    error = ""
    pseudonym = services.pseudonym_default(study=study)
    if request.method == "POST":
        pseudonym = request.POST.get("pseudonym", "")
        try:
            export = services.deid_export_start(study=study, by=request.user, pseudonym=pseudonym, request=request)
        except services.InvalidPseudonym as exc:
            error = str(exc)
        except Study.DoesNotExist:  # deleted since this request found it
            raise Http404 from None
        else:
            if export.is_finished:  # the same export, just made (a second click, another tab)
                messages.info(request, _("This export was made moments ago with the same pseudonym: here it is."))
            else:
                messages.success(request, _("The de-identified export has started."))
            return redirect(export.get_absolute_url())
    exports = page_of(request, DeidExport.objects.visible_to(request.user).filter(study=study)
                      .select_related("created_by").order_by("-created_at", "-id"), size=EXPORTS_PAGE_SIZE)
    return render(request, "deid/study_exports.html", {
        "study": study, "exports": exports, "page": exports, "pseudonym": pseudonym, "error": error, "label": LABEL,
        "study_ready": study.is_ready,
    }, status=400 if error else 200)


@login_required
@policy.serves(Action.EXPORT_DEIDENTIFIED)
@require_GET
def export_detail(request: HttpRequest, deidexport_id: UUID) -> HttpResponse:
    """State, progress (while the export runs, static/js/deid_progress.js polls ``export_status``
    and updates it in place; a Refresh link without JavaScript) and the per-file report (series,
    image number, outcome, reason; never file names)."""
    export = _export(request, deidexport_id)
    if (switch := switch_first(request, export, Action.EXPORT_DEIDENTIFIED, then=request.get_full_path())) is not None:
        return switch
    files = export.files.select_related("instance", "instance__series").order_by(
        "instance__series__series_number", "instance__instance_number", "id")
    files = page_of(request, files, size=FILES_PAGE_SIZE)
    return render(request, "deid/export_detail.html", {
        "export": export, "study": export.study, "files": files, "page": files, "label": LABEL,
        "excluded": export.files.filter(outcome=Outcome.EXCLUDED).count(),
    })


@login_required
@policy.serves(Action.EXPORT_DEIDENTIFIED)
@require_GET
def export_status(request: HttpRequest, deidexport_id: UUID) -> JsonResponse:
    """The export's progress as JSON, for its page to update in place: state, counts, percent and
    bytes, and the failure's reason as the page shows it. Refused exactly as the page is (same
    lookup); no patient data, pseudonym, names or UIDs."""
    export = _export(request, deidexport_id)
    response = JsonResponse({
        "state": export.state,
        "state_label": str(export.get_state_display()),
        "finished": export.is_finished,
        "downloadable": export.downloadable,
        "percent": export.percent,
        "files_total": export.files_total,
        "files_done": export.files_done,
        "files_exported": export.files_exported,
        "files_excluded": export.files_excluded,
        "bytes": export.bytes,
        "bytes_label": filesizeformat(export.bytes),
        "reason": export.reason_shown if export.state == State.FAILED else "",
    })
    response["Cache-Control"] = "no-store"
    return response


@login_required
@policy.serves(Action.EXPORT_DEIDENTIFIED)
@require_safe
def export_download(request: HttpRequest, deidexport_id: UUID) -> HttpResponse:
    """The export's zip (``<name>_DeID.zip``): exact Content-Length, strong ETag, single Range
    (with If-Range); audited before its first byte and when the transfer ends, like every package
    download, and stopped when the user's right to it ends meanwhile (asked again while it is
    sent). Before it is ready (or when it holds no file) the export's page says why."""
    export = _export(request, deidexport_id)
    if not export.downloadable:
        messages.info(request, _("This export has nothing to download yet."))
        return redirect(export.get_absolute_url())
    package = services.deid_export_package(export)
    user = request.user

    def recorded(action: str, figures: dict) -> None:
        record(action=action, actor=user, organization_id=export.organization_id, target=export,
               case=export.study.case, study=export.study, request=request,
               details={"scope": "deid_export", "export": str(export.public_id), **figures})

    def started(figures: dict) -> None:  # before the first byte, as every package download
        recorded(audit_actions.DOWNLOAD_STARTED, figures)

    def still_allowed() -> bool:  # asked again while the zip is sent: a membership ended stops it
        try:
            policy.require(user, Action.EXPORT_DEIDENTIFIED, export, request=request)
        except PermissionDenied:
            return False
        return True

    def altered(instance) -> None:  # an exported file's stored bytes altered while sent (the stream stops)
        blob_integrity_failed(instance=instance, read="zip", actor=user, request=request,
                              details={"scope": "deid_export", "export": str(export.public_id)})

    return package_response(request, package, on_transfer_start=started, on_transfer_end=recorded,
                            still_allowed=still_allowed, on_integrity_failed=altered)
