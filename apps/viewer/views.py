"""The in-browser viewer: a page per study, a series' instances (asked for when the series is
picked), a frame endpoint, and a close endpoint.

Every request goes through apps.sharing.policy (nothing here decides access): the page, a
series' instances and each frame need VIEW_IMAGES on the study; a ``diagnostic`` (lossless, full
resolution) frame also needs the original rendition (``allowed_renditions`` on the page, the same
check on each frame), so a preview-only recipient gets lossy preview frames only. Grants are read live: a
revoked or expired grant stops an open viewer at its next frame (HTTP 403/404 with a JSON
message that viewer.js shows). Frames are ``Cache-Control: private, no-store``: no browser keeps
them on disk (a shared workstation's cache would hold the patient's images after access ended,
which only an explicit sign-out's Clear-Site-Data cleared). viewer.js keeps the frames it fetched
in memory instead (a bounded cache, dropped when the viewer stops or the page is left), so a
frame fetched once is not asked for again while the page is open.

A viewer session is audited once when the page opens (viewer.opened) and once when it closes
(viewer.closed: a beacon from viewer.js on pagehide, or the idle sweep; apps.viewer.sessions),
never per frame. Frames (header X-Lightbox-Viewer-Session) and a heartbeat after user activity
keep a session from the idle sweep.

An open viewer also asks, every ``LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS``, whether its reader may
still view the study's images (``viewer_access``: one policy decision, nothing rendered), so that
a revoked share or an ended tumor board stops a viewer whose reader stays on one image (no frame
asked for): viewer.js then clears the image and the thumbnails and says access has ended. The
check is not activity: it keeps neither the viewer session nor the sign-in alive.
"""

from __future__ import annotations

import logging
import time
from uuid import UUID

from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from apps.core import i18n
from apps.imaging import pixels
from apps.imaging import services as imaging_services
from apps.imaging.models import Instance, Series, Study
from apps.organizations.switching import switch_first
from apps.sharing import policy
from apps.sharing import selectors as sharing_selectors
from apps.sharing.policy import Action
from apps.sharing.usecases import Rendition
from apps.viewer import selectors, services
from apps.viewer.sessions import (
    viewer_session_close,
    viewer_session_left_just_now,
    viewer_session_open,
    viewer_session_touch,
)

logger = logging.getLogger(__name__)

SESSIONS_KEY = "lightbox_viewer_sessions"
MAX_OPEN_SESSIONS = 50
#: seconds a frame answered "busy" (every render slot taken) is asked for again after
BUSY_RETRY_AFTER = 1


def _actor_label(actor, study: Study | None = None, *, facts=None) -> str:
    """How the audit trail names the reader of ``study``'s images: from the grant that allowed the
    reading (``policy.reader_label``): the signed-in user reading by their role or their own share,
    even with anonymous links opened in the same browser session; else the opened links that did.
    Without ``study``: the links the actor opened, if any."""
    if study is None:
        return actor.label if isinstance(actor, policy.LinkHolder) else ""
    return policy.reader_label(actor, Action.VIEW_IMAGES, study, facts=facts)


def _signed_in(user) -> bool:
    return bool(getattr(user, "is_authenticated", False))


def _signed_in_or_link(actor) -> bool:
    return bool(getattr(actor, "is_authenticated", False)) or isinstance(actor, policy.LinkHolder)


def _visible(actor, obj, request, *, facts=None) -> None:
    """404 (recorded) unless the actor may at least see the object's case: outsiders cannot tell
    a missing study from a hidden one. ``facts``: the request's (``policy.request_facts``)."""
    if obj is None:
        raise Http404
    if not policy.can(actor, Action.VIEW_CASE, obj, facts=facts):
        try:
            policy.require(actor, Action.VIEW_CASE, obj, request=request, facts=facts)
        except PermissionDenied:
            raise Http404 from None


def _json_error(status: int, code: str, message: str, **extra: str) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message, **extra}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _ended_with_board(actor, obj) -> dict[str, str]:
    """``{"ended": "board"}`` when the refused reader's access to ``obj``'s case (a study or an
    instance) ended with a tumor board's meeting (``access_ended_with_board``: their own grants),
    so viewer.js says the meeting ended rather than that a share was revoked or expired."""
    case_id = getattr(obj, "case_id", None) or getattr(getattr(obj, "study", None), "case_id", None)
    user = policy._user_of(actor)
    if case_id is None or not _signed_in(user) or actor is not user:
        return {}  # a reader of opened links (actor a LinkHolder) was decided on them, not on a meeting
    return {"ended": "board"} if sharing_selectors.access_ended_with_board(user=user, case_id=case_id) else {}


def _images_refusal(actor, obj, request, *, facts=None) -> JsonResponse | None:
    """None if the actor may view the images of ``obj`` (a study or an instance); otherwise the
    JSON refusal viewer.js stops on, recorded by the policy: 404 ``gone`` to whoever may not see
    its case (outsiders, ended grants), 403 ``denied`` to those who see the case but not images.
    ``facts``: the request's (``policy.request_facts``)."""
    if obj is not None and policy.can(actor, Action.VIEW_IMAGES, obj, facts=facts):
        return None
    try:
        _visible(actor, obj, request, facts=facts)
        policy.require(actor, Action.VIEW_IMAGES, obj, request=request, facts=facts)
    except Http404:
        return _json_error(404, "gone", _("This study is no longer available to you."), **_ended_with_board(actor, obj))
    except PermissionDenied:
        return _json_error(403, "denied", _("Your access to these images has ended or does not cover them."),
                           **_ended_with_board(actor, obj))
    return None


def _may_view_diagnostic(actor, obj, *, facts=None) -> bool:
    return Rendition.ORIGINAL in policy.allowed_renditions(actor, obj, facts=facts)


@policy.link_aware
@policy.serves(Action.VIEW_IMAGES)
@never_cache
@require_GET
def viewer_page(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """The viewer for one study: series, stack, window/level, zoom/pan, cine, metadata."""
    actor = policy.actor_for(request)
    if not _signed_in_or_link(actor):
        return redirect_to_login(request.get_full_path())
    study = Study.objects.select_related("organization", "case").filter(public_id=study_id).first()
    # the page only reads: its decisions (and the navigation's) share what they read, the
    # request's memberships and the actor's grants, rather than read them for each
    facts = policy.request_facts(request, actor)
    _visible(actor, study, request, facts=facts)
    # another of the person's organizations' study: opened once it is the active one (a viewer
    # open already is not stopped by a switch: its frames and checks are decided as ever)
    if (switch := switch_first(request, study, Action.VIEW_IMAGES, then=request.get_full_path())) is not None:
        return switch
    policy.require(actor, Action.VIEW_IMAGES, study, request=request, facts=facts)
    # a study whose images are still arriving, or whose ingest failed, is not opened (nothing is
    # recorded as viewed): its series may be incomplete, and would be shown as the whole study
    if (not_ready := selectors.study_not_ready(study=study)) is not None:
        return _not_ready_page(request, actor, study, not_ready, facts=facts)
    diagnostic = _may_view_diagnostic(actor, study, facts=facts)
    # the series list, and the instances of the first series only (the one shown first): the
    # others' come from series_instances when picked, so the page does not grow with the study
    series_list = selectors.viewer_series_list(study=study)
    series_data = [series.as_json() for series in series_list]
    if series_list:
        series_data[0]["instances"], series_data[0]["next"] = selectors.viewer_series_instances(
            series_pk=series_list[0].pk)
    user = policy._user_of(actor)
    viewer_session = viewer_session_open(
        study=study, user=user if _signed_in(user) else None, actor=actor,
        actor_label=_actor_label(actor, study, facts=facts), request=request,
        details={"mode": "diagnostic" if diagnostic else "preview", "series": len(series_list),
                 "instances": sum(series.count for series in series_list)})
    session_id = viewer_session.key
    _remember_session(request, session_id, study)
    return render(request, "viewer/viewer.html", {
        "study": study, "diagnostic": diagnostic, "session_id": session_id,
        # a reader of originals is not told of diagnostic quality when an original is known to be
        # lossy (the frames' "lossy" label, which viewer.js follows for the image on screen)
        "originals_lossy": diagnostic and selectors.study_originals_lossy(study=study),
        "access_check_ms": settings.LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS * 1000,
        # the most the frames viewer.js keeps in the page's memory may take
        "keep_bytes": max(1, round(settings.LIGHTBOX_VIEWER_FRAMES_MEMORY_MB * 1024 * 1024)),
        "viewer_data": {"series": series_data, "mode": "diagnostic" if diagnostic else "preview",
                        "session": session_id},
        **_back(actor, study),
    })


def _not_ready_page(request: HttpRequest, actor, study: Study, not_ready: selectors.NotReady, *,
                    facts=None) -> HttpResponse:
    """409 and a page saying why the study is not opened (images still arriving, or its ingest
    failed), with the way back. What its failed ingest job says (a reason and what to do) is shown
    to whoever may upload to its organization, as the study page shows them the job."""
    failure = not_ready.failure if not_ready.failed and policy.can(
        actor, Action.UPLOAD_STUDY, study.organization, facts=facts) else ""
    return render(request, "viewer/not_ready.html", {
        "study": study, "failed": not_ready.failed, "failure": failure, "state": not_ready.state,
        "again": request.get_full_path(), **_back(actor, study)}, status=409)


def _not_ready_json() -> JsonResponse:
    """A frame's or a series' refusal while the study is not shown in the viewer
    (``selectors.viewer_opens``): 409 ``not_ready``, on which viewer.js stops with its message."""
    return _json_error(409, "not_ready", _("Images are still being added to this study, or their ingest failed: it "
                                           "is not shown in the viewer until all of them are stored."))


def _integrity_failed_json() -> JsonResponse:
    """A frame whose stored file failed its integrity check (its bytes altered): 200 with JSON, as
    an undecodable frame's (viewer.js shows the message in the image's place and the viewer goes
    on with the other images; a thumbnail shows its placeholder), ``error`` "integrity" and
    ``X-Lightbox-Frame: integrity`` telling it apart from a file that cannot be decoded."""
    response = JsonResponse({"error": "integrity", "message": _(
        "This image's stored file failed its integrity check (it was altered since it was stored), so it is not "
        "shown. This has been recorded for your organization's security officer.")}, status=200)
    response["X-Lightbox-Frame"] = "integrity"
    response["Cache-Control"] = "private, no-store"
    return response


def _withheld_json() -> JsonResponse:
    """A frame of an image the policy withholds from this reader though it shows them the study
    (``policy.image_withheld``: its pixels may identify the patient, on an anonymous link without a
    second factor): 200 with JSON, as an undecodable frame's, ``error`` "withheld" and
    ``X-Lightbox-Frame: withheld``; viewer.js shows ``message`` in the image's place (``short`` in a
    thumbnail's) and goes on with the other images."""
    response = JsonResponse({"error": "withheld", "message": _(
        "This image may show patient details written into it; it is not shown through this link."),
        "short": _("Not shown through this link")}, status=200)
    response["X-Lightbox-Frame"] = "withheld"
    response["Cache-Control"] = "private, no-store"
    return response


def _busy_json() -> JsonResponse:
    """A frame not rendered because this process renders ``LIGHTBOX_VIEWER_RENDERS_AT_ONCE``
    frames already (``services.render_slot``): 503 ``busy`` with ``Retry-After``, after which
    viewer.js asks again (a few times, then shows the message in the image's place). Not a
    failure: nothing is recorded, and the log says so once at WARNING, not as a server error."""
    logger.warning("viewer frame answered busy: all %d render slots taken", settings.LIGHTBOX_VIEWER_RENDERS_AT_ONCE)
    response = _json_error(503, "busy", _("The server is busy showing other images, so this image cannot be shown "
                                          "right now. Try again in a moment."))
    response["Retry-After"] = str(BUSY_RETRY_AFTER)
    response._has_been_logged = True  # type: ignore[attr-defined]  # not Django's "Service Unavailable" error line
    return response


def _back(actor, study: Study) -> dict[str, str]:
    """Where the page's "back" link leads: the study's page for a signed-in user, the shared case
    (where the link led) for an anonymous link holder, who has no study page to go back to.

    Once the viewer stops, the way back is kept (found by QA: a link holder's went away with the
    image). Refused the images but not the case (403 ``denied``: the policy still lets them see
    the case), the page it leads to still opens and viewer.js leaves it. Refused the case (404
    ``gone``: the share was revoked or ended, or sent to sign in), that page would be a 404 and
    viewer.js points the link at ``back_ended_url``: "Shared with me" for anyone signed in (where
    the ended share is listed with its state), the site's start for a link holder, who has no
    such page."""
    if getattr(actor, "is_authenticated", False):
        return {"back_url": study.get_absolute_url(), "back_label": _("Back to study"),
                "back_ended_url": reverse("sharing:shared_with_me"), "back_ended_label": _("Shared with me")}
    return {"back_url": reverse("sharing:shared_case", kwargs={"case_id": study.case.public_id}),
            "back_label": _("Back to the shared case"), "back_ended_url": reverse("dashboard"),
            "back_ended_label": _("Go to the start page")}


@policy.link_aware
@policy.serves(Action.VIEW_IMAGES)
@never_cache
@require_GET
def series_instances(request: HttpRequest, study_id: UUID, series_id: UUID) -> HttpResponse:
    """A page of one series' instances (``?start=``, from 0), asked for by viewer.js when a series
    is picked: ``{"instances": [...], "next": <start of the next page> or null}``. The page's
    policy (VIEW_IMAGES on the study, 404 to outsiders); refusals answer JSON like a frame's, so
    viewer.js stops with its message. Not audited: the page recorded the viewer's opening, and
    pixels are read through frames."""
    actor = policy.actor_for(request)
    study = Study.objects.select_related("organization", "case").filter(public_id=study_id).first()
    # decided on this request's reading of the memberships and the actor's grants (each request
    # decides afresh: a revoked grant or an ended membership stops the next one)
    if (refused := _images_refusal(actor, study, request, facts=policy.request_facts(request, actor))) is not None:
        return refused
    if not selectors.viewer_opens(study=study):
        return _not_ready_json()
    series_pk = Series.objects.filter(study=study, public_id=series_id).values_list("pk", flat=True).first()
    if series_pk is None:  # another study's series, or none
        return _json_error(404, "not_found", _("This series is not part of this study."))
    try:
        start = selectors.parse_start(request.GET.get("start"))
    except ValueError:
        return _json_error(400, "bad_request", _("That request for a series' images is not valid."))
    instances, following = selectors.viewer_series_instances(series_pk=series_pk, start=start)
    return JsonResponse({"instances": instances, "next": following})


def _opener(request: HttpRequest) -> int | None:
    """Who opens viewer sessions in this browser session now: the signed-in user's id, None for
    an anonymous link holder."""
    user = getattr(request, "user", None)
    return user.pk if _signed_in(user) else None


def _own_sessions(request: HttpRequest) -> dict[str, list]:
    """The browser session's viewer sessions opened by whoever is signed in now (key: [study
    public id, opened at, opener]). Django keeps a session's data when an anonymous visitor signs
    in (login() cycles the key; it flushes only when another user was signed in), so a link
    holder's sessions would otherwise still be listed for the person who signs in after them:
    theirs are not touched, kept alive or closed from there, and are dropped at the next write."""
    opener = _opener(request)
    return {key: opened for key, opened in request.session.get(SESSIONS_KEY, {}).items()
            if (opened[2] if len(opened) > 2 else None) == opener}


def _remember_session(request: HttpRequest, session_id: str, study: Study) -> None:
    """The browser session's own viewer sessions: only these may be touched or closed from it."""
    sessions = _own_sessions(request)
    if len(sessions) >= MAX_OPEN_SESSIONS:  # tabs closed without a beacon: keep the newest
        sessions = dict(sorted(sessions.items(), key=lambda kv: kv[1][1])[-MAX_OPEN_SESSIONS + 1:])
    sessions[session_id] = [str(study.public_id), int(time.time()), _opener(request)]
    request.session[SESSIONS_KEY] = sessions


def _frame_session(request: HttpRequest, actor, study: Study, quality: str, *, facts=None) -> None:
    """Keep the viewer session a frame belongs to alive; a frame asked for outside any viewer
    session of this browser session for its study (a script, a copied frame URL), or after its
    session was closed (the idle sweep, or its page long left), opens one, so that reading pixels
    is recorded (viewer.opened, once per study and browser session) even without the page. A
    frame the page asked for just before it was left belongs to the session it closed."""
    sessions = _own_sessions(request)
    wanted = str(study.public_id)
    sent = request.headers.get("X-Lightbox-Viewer-Session", "")
    keys = [k for k, opened in sessions.items() if opened[0] == wanted]
    for key in sorted(keys, key=lambda k: k != sent):  # the page's own session first
        if viewer_session_touch(key=key):
            return
        del sessions[key]  # closed (the idle sweep): reading on is a new, recorded session
        request.session[SESSIONS_KEY] = sessions
    user = policy._user_of(actor)
    label = _actor_label(actor, study, facts=facts)
    if sent and viewer_session_left_just_now(key=sent, study=study, user=user, actor_label=label):
        return  # asked for by the page before it was left (its beacon took the key off the list)
    viewer_session = viewer_session_open(
        study=study, user=user if _signed_in(user) else None, actor=actor, actor_label=label,
        request=request, details={"mode": "diagnostic" if quality == "diagnostic" else "preview", "via": "frame"})
    _remember_session(request, viewer_session.key, study)


@policy.link_aware
@policy.serves(Action.VIEW_IMAGES)
@require_GET
def frame(request: HttpRequest, instance_id: UUID) -> HttpResponse:
    """One frame of an instance, rendered at the requested window and size (see
    apps.viewer.services). Refusals, undecodable files and files whose stored bytes were altered
    (``blob.integrity_failed``, recorded) answer JSON with a message, and so does a frame that
    finds every render slot of the process taken (503 ``busy``, ``Retry-After``)."""
    actor = policy.actor_for(request)
    instance = Instance.objects.select_related("study", "blob").filter(public_id=instance_id).first()
    # one request per frame, hundreds a study: its decisions (the images, the diagnostic original)
    # share this request's reading of the memberships (the middleware's) and of the actor's
    # grants, read afresh by the next frame, so a revocation or an ended membership stops it
    facts = policy.request_facts(request, actor)
    if instance is not None and policy.image_withheld(actor, instance, facts=facts):
        return _withheld_json()  # the study is theirs to view, this image is not: said in its place
    if (refused := _images_refusal(actor, instance, request, facts=facts)) is not None:
        return refused
    if not selectors.viewer_opens(study=instance.study):  # nothing read, nothing recorded as viewed
        return _not_ready_json()
    try:
        wanted = services.parse_frame_request(request.GET)
    except services.BadFrameRequest:
        return _json_error(400, "bad_request", _("That frame request is not valid."))
    if wanted.quality == "diagnostic":
        try:
            policy.require(actor, Action.DOWNLOAD_ORIGINAL, instance, request=request, rendition=Rendition.ORIGINAL,
                           facts=facts)
        except PermissionDenied:
            return _json_error(403, "preview_only",
                               _("You may view previews of this study only, not the diagnostic original."))
    _frame_session(request, actor, instance.study, wanted.quality, facts=facts)
    etag = services.frame_etag(instance, wanted)
    # weak comparison (RFC 9110 13.1.2): GZipMiddleware turns our ETag into W/"..." on the way out
    if etag in [t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponse(status=304)
    else:
        try:
            # a few renders at a time per process (each may take ~1.5 GB at its peak): held while
            # it decodes and encodes, released however it ends
            with services.render_slot():
                rendered = services.frame_render(src=instance, request=wanted)
        except services.RendersBusy:
            return _busy_json()
        except InvalidTag:
            # the stored file's bytes were altered: not "cannot be read as DICOM", an integrity
            # failure, logged and recorded for the security officer; nothing of it is shown
            imaging_services.blob_integrity_failed(instance=instance, read="viewer_frame", actor=actor,
                                                   actor_label=_actor_label(actor), request=request,
                                                   details={"quality": wanted.quality})
            return _integrity_failed_json()
        except pixels.UndecodableFrame as exc:
            # 200 with a message: the file is stored and may be downloaded, it just cannot be shown
            response = JsonResponse({"error": "undecodable", "message": _("This image cannot be displayed here."),
                                     "reason": i18n.translate(exc.reason)}, status=200)
            response["X-Lightbox-Frame"] = "undecodable"
            response["Cache-Control"] = "private, no-store"
            response["ETag"] = etag
            return response
        response = HttpResponse(rendered.body, content_type=rendered.content_type)
        response["X-Lightbox-Frame"] = rendered.label
        response["X-Lightbox-Window"] = f"{rendered.center:g}/{rendered.width:g}"
        response["X-Lightbox-Default-Window"] = f"{rendered.default_center:g}/{rendered.default_width:g}"
        response["X-Lightbox-Size"] = f"{rendered.columns}x{rendered.rows}"
    response["ETag"] = etag
    # nothing on disk (the patient's images outlived access in the browser's cache): viewer.js
    # keeps what it needs in memory. A browser never revalidates a no-store frame; the ETag and
    # the 304 are for other clients that kept one
    response["Cache-Control"] = "private, no-store"
    response["Vary"] = "Cookie"
    return response


@policy.link_aware
@policy.serves(Action.VIEW_IMAGES)
@require_POST
def viewer_close(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """End of a viewer session (a beacon from viewer.js): recorded once per opened session."""
    actor = policy.actor_for(request)
    study = Study.objects.filter(public_id=study_id).first()
    session_id = request.POST.get("session", "")
    sessions = _own_sessions(request)
    opened = sessions.get(session_id)
    if study is None or opened is None or opened[0] != str(study.public_id):
        # 404 to outsiders; nothing to record for others. Closing changes no grant or membership:
        # decided on what the request read (its memberships), as the heartbeat's
        _visible(actor, study, request, facts=policy.request_facts(request, actor))
        return HttpResponse(status=204)
    del sessions[session_id]
    request.session[SESSIONS_KEY] = sessions
    try:
        frames = max(0, min(int(request.POST.get("frames", "0")), 1_000_000))
    except ValueError:
        frames = 0
    viewer_session_close(key=session_id, reason="closed", frames=frames, request=request)  # once: idempotent
    return HttpResponse(status=204)


@policy.link_aware
@policy.serves(Action.VIEW_IMAGES)
@require_POST
def viewer_heartbeat(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """The page is still in use (sent by viewer.js after user activity): keeps the session from
    the idle sweep. Only the browser session's own viewer sessions; 404 to outsiders."""
    session_id = request.POST.get("session", "")
    opened = _own_sessions(request).get(session_id)
    if opened is None or opened[0] != str(study_id):
        actor = policy.actor_for(request)
        _visible(actor, Study.objects.filter(public_id=study_id).first(), request,
                 facts=policy.request_facts(request, actor))
        return HttpResponse(status=204)
    viewer_session_touch(key=session_id)
    return HttpResponse(status=204)


@policy.link_aware
@policy.serves(Action.VIEW_IMAGES)
@never_cache
@require_GET
def viewer_access(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """Whether the reader may still view this study's images, asked by an open viewer every
    ``LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS``: ``{"access": true, "diagnostic": <bool>}``, or the
    JSON refusal a frame gets (404 ``gone``, 403 ``denied``, recorded by the policy), on which
    viewer.js stops. ``diagnostic``: whether the reader may still see the diagnostic original (the
    page's decision, ``_may_view_diagnostic``): once it is false (the original withdrawn from the
    share, or originals on anonymous links turned off) viewer.js lets the diagnostic frames it
    holds go and goes on with previews, labelled so. The policy's decisions on one reading of the
    memberships and grants, nothing rendered or audited; it does not keep the viewer session from
    the idle sweep (the heartbeat does, after activity)."""
    actor = policy.actor_for(request)
    study = Study.objects.select_related("organization", "case").filter(public_id=study_id).first()
    facts = policy.request_facts(request, actor)
    if (refused := _images_refusal(actor, study, request, facts=facts)) is not None:
        return refused
    response = JsonResponse({"access": True, "diagnostic": _may_view_diagnostic(actor, study, facts=facts)})
    response["Cache-Control"] = "no-store"
    return response
