"""Download packages of a study or a whole case, streamed, resumable, authorized and audited.

``?rendition=`` picks the rendition: ``preview`` (the default: a share offers the preview first),
``education``, ``lossless`` or ``original``; the last two are diagnostic renditions and need the
"original" permission. A study's rendition its page says is "Not available" (none of its images
could be made) is not downloaded: 404, a page that says why (``_not_available``). Nor is a
rendition still being made, of a study or of any study of a case (``_not_ready``): a zip of it would
lack the images not made yet (a lossless one would hold their originals in their place), whoever
asks, by its page's button, a share's or a link's page, or its address alone. 409, a page that says
it is still being prepared, how far, and to try again later (``Retry-After``); the original is
always there.
Which the actor may take is ``apps.sharing.policy``'s decision, made once
a request before any work (``download_decide``, counting nothing, on what the request's reading
of the actor's memberships and one reading of their grants say, the check that the case may be
seen included); once the package is built it is decided again, afresh (access may have ended
meanwhile), and once the Range is known to be satisfiable (a request answered 416 counts nothing)
counted on that decision (``download_count``; a HEAD is decided again the same way, counting
nothing); a resumed transfer (a Range request not starting at 0) of the same package counts
once. The same package is the same version of it: the policy continues a transfer only when the
package's ETag now is the one counted (a study added to the case, previews made since, make it a
new download, counted), whether the client sent If-Range or not.

The response has the exact Content-Length, a strong ETag and ``Accept-Ranges: bytes``; a single
``Range`` (honoured only when ``If-Range``, if sent, matches the ETag) gets 206 with that slice.
A Range from a byte after the first without If-Range (``curl -C -``, ``wget -c``) that continues
no transfer on a grant begun in the same browser session (the package changed since the transfer
counted, none was begun, or only on another device of the same person, or the session began one of
another version too) is ignored: the package goes out whole, 200 (``_sent_whole``), since the
client's first part may be of another version and the rest of this one spliced onto it would be a
corrupt zip. So is such a Range of staff downloading on their role (no transfer is kept of it).
This is decided before a Range past the package's end is answered 416, which ``wget -c`` takes for
"already complete" (its first part may be of an older, larger package).
Under ASGI (uvicorn) the body is an async iterator that reads one blob chunk at a time in a
worker thread, so memory stays flat; Django would otherwise collect a sync iterator whole.
Every transfer is audited twice: download.started once the response is built and allowed, before
its first byte (with the range; one per response, so a resumed transfer records one per request),
so that a transfer cut off with its process (killed, redeployed) is still in the trail, bytes having
gone out; and when it ends, download.completed or download.incomplete, with the bytes sent and the
range. A HEAD, and a Range refused (416), record neither. A lossless package whose images are all
(or some) originals received lossy-compressed, standing in for the lossless copy none is made of, says so
(``details.lossy_source``: "all" or "some", ``packages.lossy_source_of``), as its label does.

Access is asked again, afresh, while a transfer runs (``policy.download_may_continue``, at most
every RECHECK_SECONDS after the decision made once the package was built): a grant or link
revoked, a case closed or a membership ended stops a transfer under way, not only the next
request. The client then has fewer bytes than the
Content-Length announced (as on a dropped connection, so it cannot take the file as complete),
and the transfer is recorded as download.incomplete with ``stopped: access_ended`` beside the
denial.

A diagnostic rendition (``original``, and ``lossless``: the same pixels, as diagnostic: both are
"original" to the policy, ``SHARING_RENDITION``) downloaded on a signed-in person's own access (their
role, or a share addressed to them) asks for a recent second factor, as sharing does
(``apps.accounts.mfa.step_up_first``, LIGHTBOX_STEP_UP_HOURS; an authenticator set up first by who
has none): once the policy allowed it (a refusal, 403 or 404, is said first) and before anything is
built, sent or counted; the step-up page comes back to the download (a GET with ``next``). A Range
request continuing a transfer asks the same, so a resume within the step-up window goes on as
before, counted once, and one after it is asked for a code first, sent nothing meanwhile. Previews
and education copies ask for none; nor does a download on an opened anonymous link's share (a link
visitor has no account to step up: the link asks for its own second factor when its share does).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from asgiref.sync import sync_to_async
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_safe

from apps.accounts import mfa
from apps.audit import actions as audit_actions
from apps.audit.services import record
from apps.cases.models import Case
from apps.core.http import header_number
from apps.imaging import services as imaging_services
from apps.imaging.blobs import AlteredBlobRead
from apps.imaging.models import Study
from apps.renditions.models import SHARING_RENDITION, Kind, Progress, Rendition, renditions_progress
from apps.renditions.packages import Package, case_package, study_package
from apps.sharing import policy
from apps.sharing import services as sharing_services
from apps.sharing.policy import Action

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
#: how often, at most, a transfer under way asks the policy again whether it may go on (seconds)
RECHECK_SECONDS = 5
#: ``details.stopped`` of a transfer cut short because the access it began under ended
STOPPED_ACCESS_ENDED = "access_ended"
#: a byte position past the end of any package: what a position written with more digits stands for
#: (int() refuses a number of more than 4,300 digits, and no package nears 10**18 bytes)
_PAST_ANY_PACKAGE = 10**18
#: what the step-up and enrolment pages say to someone sent there by a diagnostic download
ORIGINAL_STEP_UP_WHY = gettext_lazy("Downloading diagnostic images (the original DICOM or its lossless copy) "
                                    "asks for your second factor.")
#: the button of the page offering a download after the second factor (``mfa.download_label``),
#: by scope and rendition: the diagnostic ones, which ask for it (any other says "Download")
_DOWNLOAD_BUTTON = {
    ("study", Kind.ORIGINAL): gettext_lazy("Download the original DICOM"),
    ("study", Kind.LOSSLESS): gettext_lazy("Download the lossless copy"),
    ("case", Kind.ORIGINAL): gettext_lazy("Download the case's original DICOM (all its studies)"),
    ("case", Kind.LOSSLESS): gettext_lazy("Download the case's lossless copy (all its studies)"),
}


def _download_button(scope: str) -> Callable[[QueryDict], str]:
    """What a download of ``scope`` ("study", "case") gives, read as ``_kind`` reads it."""
    return lambda query: str(_DOWNLOAD_BUTTON.get((scope, query.get("rendition", Kind.PREVIEW)), ""))


def _visible(actor, obj, request, facts) -> None:
    """404 (recorded) unless the actor may know of the object at all (``policy.may_know``: they
    see its case, or a share of theirs reaches it, such as a patient-education share)."""
    if obj is None:
        raise Http404
    if not policy.may_know(actor, obj, facts=facts):
        try:
            policy.require_decided(False, actor, Action.VIEW_CASE, obj, request=request)
        except PermissionDenied:
            raise Http404 from None


def _kind(request: HttpRequest) -> str:
    value = request.GET.get("rendition", Kind.PREVIEW)
    if value not in Kind.values:
        raise Http404
    return value


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """(start, end) inclusive for one satisfiable byte range; None to send everything (no header,
    several ranges, or a form we do not take); False when unsatisfiable (416)."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    stop = header_number(last, past=_PAST_ANY_PACKAGE)  # None when not given
    if not first:  # suffix: the last N bytes
        return (max(size - stop, 0), size - 1) if stop and size else False
    start = header_number(first, past=_PAST_ANY_PACKAGE)
    end = min(stop, size - 1) if stop is not None else size - 1
    if start >= size or (stop is not None and stop < start):
        return False
    return start, end


def _actor_label(actor) -> str:
    return actor.label if isinstance(actor, policy.LinkHolder) else ""


def _resumed(request: HttpRequest) -> bool:
    """A Range request from a byte after the first (``bytes=N-``, N > 0) may continue a transfer
    (the policy's decision: of the same package, counted on its ETag as it is now). A suffix range
    (``bytes=-N``, the last N bytes, which may be the whole package) does not: it is a new
    download, counted like one."""
    match = _RANGE.match((request.headers.get("Range") or "").strip().replace(" ", ""))
    return bool(match and match.group(1).strip("0"))  # digits, not all zeros (no int(): any length)


def _bare_resume(request: HttpRequest) -> bool:
    """A Range request from a byte after the first (``_resumed``) without If-Range: nothing says
    which version of the package the client holds the first part of (``policy.download_decide``'s
    ``bare_range``, ``_sent_whole``)."""
    return _resumed(request) and not request.headers.get("If-Range")


def _package_key(obj, kind: str, scope: str) -> str:
    """What a grant's download count and resumes know a package by, with its version (the
    package's ETag, given to the policy apart: ``download_decide``'s ``package_etag``)."""
    return f"{scope}:{obj.public_id}:{kind}"


def _decide(request: HttpRequest, actor, obj, kind: str, scope: str) -> policy.DownloadDecision:
    """The policy's decision, once a request: the actor's memberships (the request's own) and
    grants are read once for all its checks. The package key names what is downloaded, so a
    Range request continuing it is a resume: counted once on a grant, and accepted for an hour
    after it began even if the grant expired meanwhile. A fresh download needs the object to be
    visible first (404 otherwise); a refused resume of an object no longer visible is a 404 too.
    The package is not built yet: its version is not known (``package_etag=None``), so whether it
    is the same package as the transfer's is decided by ``_count``, before anything is counted."""
    resumed = _resumed(request)
    facts = policy.decision_facts(request, actor)  # dropped once decided: the count writes
    if not resumed:
        _visible(actor, obj, request, facts)
    try:
        return policy.download_decide(actor=actor, obj=obj, rendition=SHARING_RENDITION[Kind(kind)],
                                      package_key=_package_key(obj, kind, scope), package_etag=None,
                                      resumed=resumed, bare_range=_bare_resume(request), request=request,
                                      facts=facts)
    except PermissionDenied:
        if resumed and not policy.may_know(actor, obj, facts=facts):
            raise Http404 from None  # the denial is recorded already
        raise


def _decide_built(request: HttpRequest, actor, obj, kind: str, scope: str, package: Package) -> policy.DownloadDecision:
    """Decide again, afresh, once the package is built (GET and HEAD alike: HEAD is refused where
    the GET would be, and never tells the ETag and size of a package the GET would not send).
    Access may have ended while the package was built (a grant or a link revoked, anonymous links
    switched off, a membership ended): the first decision's reading is not trusted for what goes
    out, as the count writes. Refused: 403, recorded, or 404 when the object may no longer be seen
    at all (as a refused decision). A Range whose If-Range names another version of the package
    gets all of the package as it is now (``_wanted``): a new download, never a resume. Without
    If-Range, the policy continues a transfer only of the package as it is now (its ETag the one
    counted): a Range request for a package that changed since is a new download all the same,
    counted (403 when the limit is used up), and sent whole (``_sent_whole``); and it continues
    only a transfer begun in the request's own browser session (``bare_range``), never the same
    person's on another device, which may be of another version than the one this client holds."""
    resumed = _resumed(request) and _wanted(request, package) is not None
    try:
        with policy.read_afresh():  # not the memberships the request read before the package was built
            decision = policy.download_decide(actor=actor, obj=obj, rendition=SHARING_RENDITION[Kind(kind)],
                                              package_key=_package_key(obj, kind, scope), package_etag=package.etag,
                                              resumed=resumed, bare_range=_bare_resume(request), request=request)
        if package.identifying and decision.withholds_identifying_pixels:
            # built on the first decision, which gave the images whose pixels may identify the
            # patient (a share of the person's own, ended meanwhile): not sent on this one
            policy.require_decided(False, actor, decision.action, obj, request=request)
        return decision
    except PermissionDenied:
        if not policy.may_know(actor, obj):
            raise Http404 from None  # the denial is recorded already
        raise


def _sent_whole(request: HttpRequest, decision: policy.DownloadDecision) -> bool:
    """Whether the request's Range is ignored and the package sent whole (200), as RFC 9110 lets a
    server do: a Range from a byte after the first without If-Range (``_bare_resume``), decided as
    a new transfer on a grant (``DownloadDecision.new_transfer``: it continues no transfer of the
    package as it is now begun in this browser session), or by role (staff: no transfer is kept,
    so nothing tells what they began). The client's first part may then be of another version,
    such as the one before a study was added to the case, downloaded on this laptop while the
    same person took the new one on their phone: the rest of the new one spliced onto it is a
    corrupt zip. A Range continuing this session's transfer of the same package, one whose
    If-Range names the package as it is now (a browser's resume: 206 by role too), and a Range
    from the first byte keep their 206. Decided before a Range past the end is refused (416)."""
    return _bare_resume(request) and (decision.by_role or decision.new_transfer)


def _count(request: HttpRequest, actor, obj, decision: policy.DownloadDecision, package: Package, sending: int):
    """Count the download on the decision made on the package as built (``_decide_built``): the
    grant it is counted on and its transfer's row (None, None by role). Refused (the limit used up
    meanwhile): 403, recorded, or 404 when the object may no longer be seen at all. ``sending``:
    the bytes this request sends of the package (``_sending``)."""
    try:
        return (policy.download_count(decision, request=request, sending=sending, package_bytes=package.size),
                decision.transfer_id)
    except PermissionDenied:
        if not policy.may_know(actor, obj):
            raise Http404 from None  # the denial is recorded already
        raise


def _on_anonymous_link(actor, decision: policy.DownloadDecision) -> bool:
    """Whether the download is decided on an opened anonymous link's share, not on the signed-in
    person's own access: their role, or a share addressed to them, which the policy tries first
    (``download_decide``), so someone who opened a link is still asked for their own second factor
    for what their role or their share gives."""
    if not isinstance(actor, policy.LinkHolder) or decision.by_role:
        return False
    grant = decision.grant
    return grant is not None and grant.links.filter(pk__in=actor.link_ids, anonymous=True).exists()


def _original_not_on_link(request: HttpRequest, actor, obj, kind: str) -> HttpResponse | None:
    """The page (403) refusing a diagnostic rendition to an anonymous link's holder because the
    sharing organization does not allow the original on that link (``policy.GrantRefusal.
    ANONYMOUS_ORIGINAL``: its sharing policy, read afresh, or a link without a second factor),
    once the policy refused the download (recorded, nothing counted); None for any other refusal,
    which is said as ever."""
    if not isinstance(actor, policy.LinkHolder) or SHARING_RENDITION[Kind(kind)] != "original":
        return None
    if policy.download_refusal(actor, obj, rendition="original") != policy.GrantRefusal.ANONYMOUS_ORIGINAL:
        return None
    return render(request, "renditions/original_not_on_link.html", _way_back(request, obj), status=403)


def _step_up_first(request: HttpRequest, actor, obj, kind: str,
                   decision: policy.DownloadDecision) -> HttpResponse | None:
    """None when the download may go on; else the step-up (or enrolment) page it sends the
    signed-in person to first, recorded (``mfa.step_up_first``) in the audit trail of ``obj``'s
    organization (the study's or case's, not the active one's: a download asks no switch): a
    diagnostic rendition on their own access without a second factor passed within
    LIGHTBOX_STEP_UP_HOURS."""
    if SHARING_RENDITION[Kind(kind)] != "original" or not getattr(request.user, "is_authenticated", False):
        return None
    if _on_anonymous_link(actor, decision):
        return None
    return mfa.step_up_first(request, organization_id=obj.organization_id)


def _sending(request: HttpRequest, package: Package) -> int:
    """How many bytes of ``package`` this request sends (its Range, or all of it)."""
    wanted = _wanted(request, package)
    return wanted[1] - wanted[0] + 1 if wanted else package.size


def _not_available(request: HttpRequest, study: Study, kind: str) -> HttpResponse:
    """The refusal (404, a page that says why) of a rendition the study's page says is "Not
    available" (its status: none of its images could be made, such as the lossless copy of an
    original received lossy-compressed, which ``encoders.lossless_encode`` refuses), so that a
    download never gives what the page says the study does not have (the lossless zip held the
    lossy originals under another name). A case's zip keeps such a study in it, its folder holding
    what there is (its originals, each labelled as such)."""
    rendition = Rendition.objects.get(study=study, kind=kind)
    return render(request, "renditions/not_available.html",
                  {"study": study, "rendition": rendition, "kind_label": Kind(kind).label, **_way_back(request, study)},
                  status=404)


def _way_back(request: HttpRequest, obj: Study | Case) -> dict[str, str]:
    """The "back" link (``back_url``, ``back_label``; none when there is nowhere to go) of a page
    refusing a download of ``obj`` for now, where the policy says (``policy.way_back``): the study's
    or case's page only for who may open it; else the shared case's page (a link holder's, whose
    link led there), the patient portal for a patient, "Shared with me" for anyone else signed in."""
    actor = policy.actor_for(request)
    way = policy.way_back(actor, obj, facts=policy.request_facts(request, actor))
    if way == policy.WayBack.OWN_PAGE:
        label = _BACK_TO_CASE if isinstance(obj, Case) else _BACK_TO_STUDY
        return {"back_url": obj.get_absolute_url(), "back_label": label}
    if way == policy.WayBack.SHARED_CASE:
        case = obj if isinstance(obj, Case) else obj.case
        return {"back_url": reverse("sharing:shared_case", kwargs={"case_id": case.public_id}),
                "back_label": gettext_lazy("Back to the shared case")}
    if way == policy.WayBack.PORTAL:
        return {"back_url": reverse("education:portal"), "back_label": gettext_lazy("Back to your patient portal")}
    if way == policy.WayBack.SHARED_WITH_ME:
        return {"back_url": reverse("sharing:shared_with_me"), "back_label": gettext_lazy("Shared with me")}
    return {}


_BACK_TO_STUDY = gettext_lazy("Back to the study")
_BACK_TO_CASE = gettext_lazy("Back to the case")


#: when a client is told to ask again for a package still being prepared (seconds)
RETRY_PREPARING_SECONDS = 60


def _being_prepared(request: HttpRequest, kind: str, making: list[Progress], obj: Study | Case) -> HttpResponse:
    """The refusal of a package whose rendition is still being made (``Progress.being_made``):
    409 and a page saying so, how many of its images are made, and to try again later (its
    address, which the client keeps); never the part made so far."""
    response = render(request, "renditions/being_prepared.html", {
        "study": obj if isinstance(obj, Study) else None, "kind_label": Kind(kind).label,
        "made": sum(min(p.made, p.images) for p in making),
        "images": sum(p.images for p in making), "studies_making": len(making), "again": request.get_full_path(),
        **_way_back(request, obj)},
        status=409)
    response["Retry-After"] = str(RETRY_PREPARING_SECONDS)
    return response


def _not_ready(request: HttpRequest, study: Study, kind: str) -> HttpResponse | None:
    """A study's rendition that is not downloaded now, the refusal said (None when it may be
    served): one its page says is "Not available" (404, ``_not_available``), or one still being
    made (409, ``_being_prepared``). The original is always there. One query."""
    progress = renditions_progress([study.pk], kind).get(study.pk)
    if progress is None:
        return None
    if progress.unavailable:
        return _not_available(request, study, kind)
    if progress.being_made:
        return _being_prepared(request, kind, [progress], study)
    return None


def _case_not_ready(request: HttpRequest, case: Case, studies: list[Study], kind: str) -> HttpResponse | None:
    """A case's zip while the rendition of any of its studies is still being made: refused (409,
    ``_being_prepared``), not sent without their images. A study whose rendition is "Not available"
    stays in it (its folder holds what there is)."""
    making = [p for p in renditions_progress([s.pk for s in studies], kind).values() if p.being_made]
    return _being_prepared(request, kind, making, case) if making else None


def _serve(request: HttpRequest, actor, obj, kind: str, scope: str, build,
           refusal: Callable[[], HttpResponse | None] | None = None) -> HttpResponse:
    # may they, before any work; nothing is counted until the package is known to go out: a Range
    # it cannot satisfy (416, judged on the package's size) must not use up one of a grant's downloads
    try:
        decision = _decide(request, actor, obj, kind, scope)
    except PermissionDenied:
        if (refused := _original_not_on_link(request, actor, obj, kind)) is not None:
            return refused
        raise
    # a rendition there is none of (``refusal``: the study's page says "Not available"), or one still
    # being made: said once the policy allowed it (a refusal of the actor is said first), before a
    # second factor is asked
    if refusal is not None and (refused := refusal()) is not None:
        return refused
    # a diagnostic rendition: a recent second factor, once allowed (a refusal is said first) and
    # before anything is built or counted
    if (asked := _step_up_first(request, actor, obj, kind, decision)) is not None:
        return asked
    try:
        package: Package = build(withhold=lambda decided=decision: decided.withholds_identifying_pixels)
    except AlteredBlobRead as exc:
        # an image's stored file read to build the package (its original's CRC, an education
        # picture) failed its integrity check: recorded, and said, before any byte or count
        return _altered_before_sending(request, actor, obj, kind, scope, exc.instance)
    # decided again on the package as built (HEAD too, as its GET is, counting nothing)
    decision = _decide_built(request, actor, obj, kind, scope, package)
    # a Range continuing no transfer of this package by this client: ignored, before any 416 (which
    # ``wget -c`` reads as "already complete", keeping a first part that may be of another version)
    whole = _sent_whole(request, decision)
    if not whole and (unsatisfiable := range_refusal(request, package)) is not None:
        return unsatisfiable
    sending = package.size if whole else _sending(request, package)
    grant, transfer = ((decision.grant, None) if request.method == "HEAD"
                       else _count(request, actor, obj, decision, package, sending))
    context = {"scope": scope, "rendition": kind, "grant": str(grant.public_id) if grant else ""}
    if package.lossy_source:
        # what went out, as its label and name say: a "lossless" zip of originals received lossy
        # holds no lossless copy. ``rendition`` stays the kind asked for (counting and resumes key on it)
        context["lossy_source"] = package.lossy_source

    def started(figures: dict) -> None:
        record(action=audit_actions.DOWNLOAD_STARTED, actor=actor, actor_label=_actor_label(actor),
               organization_id=obj.organization_id, target=obj, request=request, details={**context, **figures})

    def recorded(action: str, figures: dict) -> None:
        if transfer is not None:  # a transfer finished is not resumed again
            sharing_services.grant_download_sent(transfer_id=transfer, sent=figures["bytes_sent"],
                                                 reserved=sending, total=figures["total_bytes"])
        record(action=action, actor=actor, actor_label=_actor_label(actor), organization_id=obj.organization_id,
               target=obj, request=request, details={**context, **figures})

    def still_allowed() -> bool:
        return policy.download_may_continue(actor=actor, obj=obj, rendition=SHARING_RENDITION[Kind(kind)],
                                            package_key=_package_key(obj, kind, scope), package_etag=package.etag,
                                            request=request)

    def altered(instance) -> None:
        imaging_services.blob_integrity_failed(instance=instance, read="zip", actor=actor,
                                               actor_label=_actor_label(actor), request=request,
                                               details={"scope": scope, "rendition": kind})

    return package_response(request, package, on_transfer_start=started, on_transfer_end=recorded,
                            still_allowed=still_allowed, whole=whole, on_integrity_failed=altered)


def _altered_before_sending(request: HttpRequest, actor, obj, kind: str, scope: str, instance) -> HttpResponse:
    """A package one of whose images' stored files failed its integrity check (its bytes altered
    since stored) while the package was built: ``blob.integrity_failed`` recorded (read ``zip``),
    and 409 with a page saying so, never a zip without that image passed off as complete."""
    imaging_services.blob_integrity_failed(instance=instance, read="zip", actor=actor, actor_label=_actor_label(actor),
                                           request=request, details={"scope": scope, "rendition": kind})
    response = render(request, "renditions/integrity_failed.html", _way_back(request, obj), status=409)
    response["Cache-Control"] = "private, no-store"
    return response


def _wanted(request: HttpRequest, package: Package) -> tuple[int, int] | bool | None:
    """The request's Range on this package (``parse_range``), None (all of it) when If-Range
    names another version of it."""
    wanted = parse_range(request.headers.get("Range"), package.size)
    if_range = request.headers.get("If-Range")
    if wanted and if_range and if_range.strip() != package.etag:
        wanted = None  # the package changed since the first part: send it whole
    return wanted


def range_refusal(request: HttpRequest, package: Package) -> HttpResponse | None:
    """The 416 answer when the request's Range cannot be satisfied by ``package``, else None.
    ``package_response`` answers with it; a caller that counts downloads asks first, so that a
    refused Range counts nothing."""
    return _unsatisfiable(package) if _wanted(request, package) is False else None


def _unsatisfiable(package: Package) -> HttpResponse:
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{package.size}"
    return response


def package_response(request: HttpRequest, package: Package, *, on_transfer_start: Callable[[dict], None],
                     on_transfer_end, still_allowed: Callable[[], bool], whole: bool = False,
                     on_integrity_failed: Callable[[object], None] | None = None) -> HttpResponse:
    """The one way a package goes out, once the caller's policy check passed: exact
    Content-Length, strong ETag, a single Range (with If-Range; 416 when unsatisfiable), HEAD with
    the headers of a GET and no body. Before the first byte of a transfer (a GET answered 200 or
    206, not a HEAD nor a 416), ``on_transfer_start(figures)`` is called once with the package's
    total and the range, for the caller to record ``download.started``: the end's record is made
    by the process sending the body, which may be killed before it ends (bytes gone out, nothing
    recorded). When a transfer ends, ``on_transfer_end(action, figures)``
    is called once with ``download.completed`` or ``download.incomplete`` and the figures (the
    package's total and range, bytes sent) for the caller to record with its own actor and target.

    ``still_allowed()``: the caller's policy question, asked again while the body is sent (at most
    every RECHECK_SECONDS; it records its own refusal). When it says no, nothing more is sent and
    the figures say ``stopped: access_ended``.

    ``whole``: the caller ignores the request's Range (RFC 9110 lets a server do so) and the
    package goes out whole, 200, as to a request without one (``_sent_whole``).

    ``on_integrity_failed(instance)``: called once when an image's stored file fails its integrity
    check while the body is sent (its bytes altered: ``AlteredBlobRead``), for the caller to
    record ``blob.integrity_failed``. The status is sent by then: the error is raised on, as a
    storage error is, so the server drops the connection and the client has fewer bytes than the
    Content-Length announced (never a complete-looking zip missing a file); the transfer is
    recorded download.incomplete."""
    wanted = None if whole else _wanted(request, package)
    if wanted is False:
        return _unsatisfiable(package)
    total = package.size
    start, end = wanted if wanted else (0, total - 1)
    # figures only: the package's name says the study's date and description, which an audit
    # event's details never hold (the caller records the rendition, the scope and the ids)
    figures = {"total_bytes": total, "range_start": start, "range_end": end}

    def done(sent: int, complete: bool, stopped: bool = False) -> None:
        finished = complete and end == total - 1
        on_transfer_end(audit_actions.DOWNLOAD_COMPLETED if finished else audit_actions.DOWNLOAD_INCOMPLETE,
                        {**figures, "bytes_sent": sent, "completed": finished,
                         **({"stopped": STOPPED_ACCESS_ENDED} if stopped else {})})

    if request.method == "HEAD":
        # the headers a GET would get, no body: nothing counted, no transfer recorded
        response = HttpResponse(status=206 if wanted else 200, content_type="application/zip")
    else:
        on_transfer_start(dict(figures))  # recorded before the first byte: before the body exists
        stream = _async_stream if isinstance(request, ASGIRequest) else _sync_stream
        response = StreamingHttpResponse(stream(package, start, end, done, still_allowed, on_integrity_failed),
                                         status=206 if wanted else 200,
                                         content_type="application/zip")
    response["Content-Length"] = str(end - start + 1)
    if wanted:
        response["Content-Range"] = f"bytes {start}-{end}/{total}"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = package.etag
    response["Content-Disposition"] = f'attachment; filename="{package.filename}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Lightbox-Label"] = package.label.encode("ascii", "replace").decode()
    # a zip of DICOM and JPEG does not compress, and gzip would drop the Content-Length and
    # break Range: keep GZipMiddleware off this response
    request.META.pop("HTTP_ACCEPT_ENCODING", None)
    return response


class _Recheck:
    """When a transfer under way asks its policy question again: at most every RECHECK_SECONDS."""

    def __init__(self) -> None:
        self.last = time.monotonic()  # the transfer was just authorized

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < RECHECK_SECONDS:
            return False
        self.last = now
        return True


def _sync_stream(package: Package, start: int, end: int, done, still_allowed: Callable[[], bool],
                 altered: Callable[[object], None] | None = None):
    sent, complete, stopped = 0, False, False
    recheck = _Recheck()
    try:
        for chunk in package.iter_range(start, end):
            if recheck.due() and not still_allowed():
                stopped = True
                break
            sent += len(chunk)
            yield chunk
        complete = not stopped
    except AlteredBlobRead as exc:
        if altered is not None:
            altered(exc.instance)
        raise  # as a storage error: the connection is dropped, short of the Content-Length
    finally:
        done(sent, complete, stopped)


#: the worker thread reads and decrypts about this many bytes per hop to the event loop
BATCH = 4 * 1024 * 1024


def _batch(pieces) -> list[bytes]:
    """The next pieces of ``pieces``, about BATCH bytes (runs in the worker thread); [] at the end."""
    parts, size = [], 0
    for piece in pieces:
        parts.append(piece)
        size += len(piece)
        if size >= BATCH:
            break
    return parts


#: end-of-transfer work (close, audit) running detached from a cancelled response task
_FINISHING: set[asyncio.Future] = set()


async def _finish(executor: ThreadPoolExecutor, pieces, done, sent: int, complete: bool, stopped: bool) -> None:
    try:
        await asyncio.get_running_loop().run_in_executor(executor, pieces.close)
    finally:
        executor.shutdown(wait=False)
        await sync_to_async(done)(sent, complete, stopped)


async def _async_stream(package: Package, start: int, end: int, done, still_allowed: Callable[[], bool],
                        altered: Callable[[object], None] | None = None):
    # one worker thread per transfer, always the same: hopping between the default pool's
    # threads made the decrypting reads 3-4 times slower (measured by bench/renditions.py)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lightbox-download")
    loop = asyncio.get_running_loop()
    pieces = package.iter_range(start, end)
    sent, complete, stopped = 0, False, False
    recheck = _Recheck()
    ahead = None
    try:
        ahead = loop.run_in_executor(executor, _batch, pieces)
        while parts := await ahead:
            # the worker reads and decrypts the next batch while the event loop sends this one;
            # at most two batches are held (memory stays flat)
            ahead = loop.run_in_executor(executor, _batch, pieces)
            if recheck.due() and not await sync_to_async(still_allowed)():
                stopped = True
                break
            chunk = parts[0] if len(parts) == 1 else b"".join(parts)
            sent += len(chunk)
            yield chunk
        else:
            ahead = None
            complete = True
    except AlteredBlobRead as exc:
        if altered is not None:
            await sync_to_async(altered)(exc.instance)
        raise  # as a storage error: the connection is dropped, short of the Content-Length
    finally:
        if ahead is not None:
            ahead.cancel()  # a batch being read finishes first: _finish's close queues behind it
        # Django cancels the response task when the client disconnects, which a client does as
        # soon as it has the last byte: the audit record must not depend on this task surviving
        task = asyncio.ensure_future(_finish(executor, pieces, done, sent, complete, stopped))
        _FINISHING.add(task)
        task.add_done_callback(_FINISHING.discard)
        await asyncio.shield(task)


def _signed_in_or_link(actor) -> bool:
    return bool(getattr(actor, "is_authenticated", False)) or isinstance(actor, policy.LinkHolder)


@policy.link_aware
@policy.serves(Action.DOWNLOAD_PREVIEW)
@require_safe
@mfa.asks_step_up(why=ORIGINAL_STEP_UP_WHY, download=_download_button("study"))  # diagnostic only (_step_up_first)
def study_download(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """A zip of one rendition of one study (``?rendition=``, preview by default)."""
    actor = policy.actor_for(request)
    if not _signed_in_or_link(actor):
        return redirect_to_login(request.get_full_path())
    study = Study.objects.select_related("organization", "case").filter(public_id=study_id).first()
    if study is None:
        raise Http404
    kind = _kind(request)
    if not study.is_ready:
        raise Http404
    return _serve(request, actor, study, kind, "study", lambda withhold: study_package(study, kind, withhold=withhold),
                  refusal=lambda: _not_ready(request, study, kind))


@policy.link_aware
@policy.serves(Action.DOWNLOAD_PREVIEW)
@require_safe
@mfa.asks_step_up(why=ORIGINAL_STEP_UP_WHY, download=_download_button("case"))  # diagnostic only (_step_up_first)
def case_download(request: HttpRequest, case_id: UUID) -> HttpResponse:
    """A zip of one rendition of every study of a case (latest versions, ready)."""
    actor = policy.actor_for(request)
    if not _signed_in_or_link(actor):
        return redirect_to_login(request.get_full_path())
    case = Case.objects.select_related("organization").filter(public_id=case_id).first()
    if case is None:
        raise Http404
    kind = _kind(request)

    studies: list[Study] = []

    def refusal() -> HttpResponse | None:  # read once the policy allowed it, and built from
        studies[:] = Study.objects.filter(case=case).latest_versions().ready().order_by("study_date", "pk")
        return _case_not_ready(request, case, studies, kind)

    return _serve(request, actor, case, kind, "case",
                  lambda withhold: case_package(case, studies, kind, withhold=withhold), refusal=refusal)
