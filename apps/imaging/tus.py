"""tus 1.0.0 server at /api/v1/uploads/ (core, creation, creation-with-upload, termination,
checksum, expiration). Authenticated by session (CSRF token in ``X-CSRFToken``), scoped to the
active organization, limited by ``Organization.upload_max_bytes``.

Bodies are read as streams in 1 MiB pieces (never ``request.body``; under ASGI straight from the
receive channel, see apps.imaging.asgi) and written encrypted to the staging file; a checksum
mismatch or an oversize body rolls the file back to the last offset; a client that disconnects
mid-body keeps what arrived unless it sent a checksum.
Header names are case-insensitive (tuspy sends them in lower case). Serve under ASGI: WSGI
servers drop chunked bodies.
A refusal keeps the status and headers tus prescribes; its plain text body is in the reader's
language (the signed-in user's, else the language cookie or Accept-Language).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from datetime import UTC
from email.utils import format_datetime
from enum import StrEnum
from uuid import UUID

from django.core.exceptions import PermissionDenied, RequestAborted
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views.decorators.cache import never_cache

from apps.audit import actions as audit_actions
from apps.audit.services import record, record_hidden_refusal
from apps.cases.models import Case
from apps.core.http import header_number
from apps.imaging import follow, uploads
from apps.imaging.asgi import body_stream
from apps.imaging.models import Upload, UploadState
from apps.imaging.selectors import upload_job_lines, with_images_now
from apps.sharing import policy
from apps.sharing.policy import Action

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
READ = 1024 * 1024
#: seconds a PATCH waits for the request still writing the same upload (a client resuming right
#: after a dropped connection can be quicker than the server noticing the drop)
LOCK_WAIT = 10
OCTET = "application/offset+octet-stream"
#: what a header's number written with more digits than this stands for: more bytes than any
#: upload or offset (``header_number``)
_PAST_ANY_UPLOAD = 10**19
logger = logging.getLogger(__name__)

#: the methods each resource answers (the ``Allow`` header of its 405)
ROOT_METHODS = "OPTIONS, POST"
UPLOAD_METHODS = "GET, HEAD, PATCH, DELETE, OPTIONS"


class Refusal(StrEnum):
    """The ``Lightbox-Refusal`` header of a refusal the upload page explains in its own words
    (static/js/upload.js): the text is in the reader's language, so the page goes by this code,
    never by the text. A refusal without one is told by its status alone."""

    SIGNED_OUT = "signed_out"          # 403: no session (sign in, then the file resumes)
    CASE_CLOSED = "case_closed"        # 403: the case named was closed (after the page was loaded)
    CASE_FORBIDDEN = "case_forbidden"  # 403: the case named takes no upload from this user
    TOO_LARGE = "too_large"            # 413: Upload-Length over the organization's limit
    OVER_LENGTH = "over_length"        # 413: more bytes than Upload-Length (the file changed)


def _resp(status: int, **headers: str) -> HttpResponse:
    response = HttpResponse(status=status)
    response["Tus-Resumable"] = TUS_VERSION
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _error(status: int, message: str, **headers: str) -> HttpResponse:
    """A refusal: the status and headers tus prescribes, and a plain text body saying why in the
    reader's language (LocaleMiddleware and apps.accounts' UserLanguageMiddleware have activated
    it). Clients act on the status; the text is for the person reading the error."""
    response = _resp(status, **{name: str(value) for name, value in headers.items()})  # a Refusal: plain str
    response.content = message.encode()
    response["Content-Type"] = "text/plain; charset=utf-8"
    return response


def _offset_conflict(offset: int | None) -> HttpResponse:
    """409: the request's Upload-Offset is not where the upload stands (``offset``)."""
    return _error(409, gettext("Upload-Offset does not match the upload's offset (%(offset)s): resume from there")
                  % {"offset": offset}, Upload_Offset=str(offset))


def _expires(upload: Upload) -> str:
    return format_datetime(upload.expires_at.astimezone(UTC), usegmt=True)


def _parse_metadata(raw: str) -> dict[str, str] | None:
    """Upload-Metadata's pairs, or None when malformed: a value not base64 of UTF-8 text, or one
    holding a NUL character, which PostgreSQL cannot store (the file name and the kept metadata
    are saved with the upload)."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = pair.partition(" ")
        try:
            out[key] = base64.b64decode(value, validate=True).decode() if value else ""
        except (binascii.Error, UnicodeDecodeError):
            return None
        if "\x00" in out[key]:
            return None
    return out


def _ended(upload: Upload) -> HttpResponse | None:
    """404 for a cancelled upload (tus termination), 410 for an expired one, swept or past its
    time (tus expiration); None for one that has not ended."""
    if upload.state == UploadState.TERMINATED:
        return _error(404, gettext("no such upload"))
    if upload.state == UploadState.EXPIRED or (upload.state == UploadState.UPLOADING
                                               and not uploads.upload_takes_bytes(upload)):
        return _error(410, gettext("this upload expired"))
    return None


def _not_a_number(header: str) -> HttpResponse:
    """400: ``header`` (Upload-Offset, Upload-Length) is there but not a number written in digits
    0-9 (it was answered as if missing)."""
    return _error(400, gettext("%(header)s must be a number of bytes, in digits 0-9") % {"header": header})


def _upload_url(upload: Upload) -> str:
    return reverse("imaging:tus_upload", kwargs={"upload_id": upload.public_id})


def _check_version(request: HttpRequest) -> HttpResponse | None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        return _error(412, gettext("unsupported tus version: send Tus-Resumable: %(version)s")
                      % {"version": TUS_VERSION}, Tus_Version=TUS_VERSION)
    return None


def _unauthenticated(request: HttpRequest) -> HttpResponse | None:
    if not request.user.is_authenticated:
        # the upload page tells a sign-out from a refusal by this header, not by the text
        return _error(403, gettext("sign in first"), Lightbox_Refusal=Refusal.SIGNED_OUT)
    return None


def _checksum(request: HttpRequest) -> tuple[str, bytes] | HttpResponse | None:
    """Upload-Checksum as (algorithm, expected digest); None without one; a 400 when its algorithm
    is not one of CHECKSUMS or its digest is not the base64 of a digest of that algorithm's size
    (an empty one included: it could match no body, so every chunk would be a 460)."""
    checksum = request.headers.get("Upload-Checksum", "")
    if not checksum:
        return None
    algo, _, value = checksum.partition(" ")
    algo = algo.lower()
    if algo not in CHECKSUMS:
        return _error(400, gettext("unsupported checksum algorithm"))
    try:
        expected = base64.b64decode(value, validate=True)
    except binascii.Error:
        return _error(400, gettext("malformed Upload-Checksum"))
    if len(expected) != CHECKSUMS[algo]().digest_size:
        return _error(400, gettext("malformed Upload-Checksum"))
    return algo, expected


def _storage_unavailable(upload: Upload | None, exc: OSError) -> HttpResponse:
    """503: the staging folder cannot be written (disk full, unwritable) or is not there (its
    volume not mounted: ``staging.StagingUnavailable``, never made again empty). The offset moves
    only after the bytes are on disk, so nothing acknowledged is lost: clients retry a 5xx
    (tus-js-client after its delays) and resume from the offset."""
    logger.warning("upload %s: staging not writable (%s)", getattr(upload, "pk", "-"), type(exc).__name__)
    return _error(503, gettext("The server cannot store uploads at the moment. Try again later: the upload "
                               "resumes where it stopped."), Retry_After="60")


def _write_body(request: HttpRequest, upload: Upload) -> HttpResponse | None:
    """Append the request body at upload.offset; verify the checksum; update the offset. A
    staging file that cannot be written is a 503, the offset left where it was."""
    try:
        return _append(request, upload)
    except OSError as exc:
        return _storage_unavailable(upload, exc)


def _append(request: HttpRequest, upload: Upload) -> HttpResponse | None:
    checksum = _checksum(request)
    if isinstance(checksum, HttpResponse):
        return checksum
    digest = None
    expected = b""
    if checksum is not None:
        algo, expected = checksum
        digest = CHECKSUMS[algo]()
    declared = header_number(request.headers.get("Content-Length"), past=_PAST_ANY_UPLOAD)
    start = upload.offset
    stream = body_stream(request)  # straight from the ASGI channel when served through it
    try:
        writer = uploads.upload_writer(upload, wait=LOCK_WAIT)  # reads the upload again, into ``upload``
    except BlockingIOError:
        return _error(423, gettext("another request is writing this upload"))
    except Upload.DoesNotExist:  # the upload's row went while this request waited: no offset to tell
        return _error(404, gettext("no such upload"))
    except uploads.UploadClosed:
        # cancelled or expired while this request waited (nothing written: 404, 410), or finished
        # by the request that held the lock (answered as a finished upload is)
        if (ended := _ended(upload)) is not None:
            return ended
        return _offset_conflict(upload.offset) if upload.offset != start else None
    if stream is not None:
        stream.stop = writer.stop_requested  # a newer request for this upload takes over
    else:
        stream = request
    try:
        if upload.offset != start:  # the request that held the lock moved it (kept a partial body)
            return _offset_conflict(upload.offset)
        received = 0
        while True:
            try:
                chunk = stream.read(READ)
            except RequestAborted:
                # the client went away mid-body: without a checksum, keep what arrived (tus:
                # store as much as possible, the client resumes from the offset); with one,
                # the chunk cannot be verified, so it is dropped
                if digest is not None or not received:
                    writer.rollback(start)
                else:
                    writer.sync()
                    if not _advance(upload, start, received):
                        writer.rollback(start)
                return _error(400, gettext("the client disconnected"))  # nobody reads it
            if not chunk:
                break
            received += len(chunk)
            if upload.length is not None and start + received > upload.length:
                writer.rollback(start)
                return _error(413, gettext("more bytes than Upload-Length"), Lightbox_Refusal=Refusal.OVER_LENGTH)
            if digest is not None:
                digest.update(chunk)
            writer.write(chunk)
        if declared is not None and declared != received:
            writer.rollback(start)
            return _error(400, gettext("body shorter than Content-Length"))
        if digest is not None and digest.digest() != expected:
            writer.rollback(start)
            return _error(460, gettext("checksum mismatch: the chunk was not kept"))
        writer.sync()  # the bytes are on disk before the offset says so
        if not _advance(upload, start, received):
            writer.rollback(start)
            fresh = Upload.objects.filter(pk=upload.pk).first()
            if fresh is None:
                return _error(404, gettext("no such upload"))
            return _ended(fresh) or _error(409, gettext("offset changed meanwhile"))
    finally:
        writer.close()
    return None


def _advance(upload: Upload, start: int, received: int) -> bool:
    """Move the offset from ``start`` by ``received`` bytes, only if nobody else moved it and
    the upload still takes bytes: cancelling and the expiry sweep do not wait for the writer
    (they claim the upload, then delete its staging file), and the bytes of one that ended while
    they arrived went with the deleted file."""
    expires = uploads.expiry_from_now()
    moved = Upload.objects.filter(pk=upload.pk, offset=start, state=UploadState.UPLOADING).update(
        offset=start + received, expires_at=expires)
    if moved:
        upload.offset, upload.expires_at = start + received, expires
        follow.follow_queue(upload)  # a worker reads what arrived (the upload goes on)
    return bool(moved)


@never_cache
def uploads_root(request: HttpRequest) -> HttpResponse:
    """OPTIONS (discovery) and POST (creation, creation-with-upload)."""
    if request.method == "OPTIONS":
        org = getattr(request, "organization", None) if request.user.is_authenticated else None
        headers = {"Tus_Version": TUS_VERSION, "Tus_Extension": EXTENSIONS,
                   "Tus_Checksum_Algorithm": ",".join(CHECKSUMS)}
        if org is not None:
            headers["Tus_Max_Size"] = str(org.upload_max_bytes)
        return _resp(204, **headers)
    if request.method != "POST":
        return _error(405, gettext("use POST to create an upload"), Allow=ROOT_METHODS)
    if (bad := _unauthenticated(request)) or (bad := _check_version(request)):
        return bad
    org = request.organization
    if org is None:
        return _error(403, gettext("you are not a member of an organization"))
    try:
        policy.require(request.user, Action.UPLOAD_STUDY, org, request=request)  # the denial is recorded
    except PermissionDenied:
        # plain text, as every tus error
        return _error(403, gettext("you may not upload studies to this organization"))
    length = header_number(request.headers.get("Upload-Length"), past=_PAST_ANY_UPLOAD)
    if length is None:
        if "Upload-Length" in request.headers:
            return _not_a_number("Upload-Length")
        return _error(400, gettext("Upload-Length is required (deferred length is not supported)"))
    if length > org.upload_max_bytes:
        return _error(413, gettext("larger than this organization's upload limit (%(limit)s bytes)")
                      % {"limit": org.upload_max_bytes}, Lightbox_Refusal=Refusal.TOO_LARGE)
    metadata = _parse_metadata(request.headers.get("Upload-Metadata", ""))
    if metadata is None:
        return _error(400, gettext("malformed Upload-Metadata"))
    with_body = request.headers.get("Content-Type", "").startswith(OCTET)
    if with_body and isinstance(bad := _checksum(request), HttpResponse):
        return bad  # refused before the upload exists (it was created, and the 400 dropped, before)
    case = None
    if metadata.get("case"):
        try:
            wanted = UUID(metadata["case"])
        except ValueError:
            return _error(400, gettext("unknown case"))
        case = Case.objects.visible_to(request.user).filter(organization=org).filter(public_id=wanted).first()
        if case is None:
            # another organization's case, or one this user does not see: the same answer whether
            # it exists or not, the probe of one that does recorded in its organization's trail
            # (as the study page's attach records it)
            record_hidden_refusal(user=request.user, model=Case, public_id=wanted, request=request,
                                  wanted=Action.UPLOAD_STUDY.value)
            return _error(400, gettext("unknown case"))
    filename = metadata.get("filename") or metadata.get("name") or ""
    keep = {k: v[:200] for k, v in metadata.items() if k in {"filename", "name", "filetype", "type", "case"}}
    try:
        upload = uploads.upload_create(organization=org, user=request.user, length=length, filename=filename,
                                       metadata=keep, case=case, request=request)
    except OSError as exc:  # the staging file cannot be made: nothing was saved
        return _storage_unavailable(None, exc)
    except PermissionDenied:  # the denial is recorded; the case is seen, so it is named
        return _case_refusal(case)
    headers = {"Location": request.build_absolute_uri(_upload_url(upload)), "Upload_Expires": _expires(upload)}
    if with_body:
        if (bad := _write_body(request, upload)) is not None:
            # the body refused (a checksum mismatch, more bytes than Upload-Length, fewer than
            # Content-Length, the client gone, the staging folder not writable): the client is told
            # why, never 201. A refusal carries no Location, so nobody can resume this upload:
            # abandoned at once (recorded) rather than left with its staging file until it expires
            uploads.upload_terminate(upload=upload, by=request.user, request=request)
            return bad
        headers["Upload_Offset"] = str(upload.offset)
    if (with_body or length == 0) and (bad := _maybe_complete(request, upload)) is not None:
        return bad
    return _resp(201, **headers)


def _case_refusal(case: Case | None) -> HttpResponse:
    """403: the policy refused an upload into ``case`` (one the user sees, so it is named)."""
    if case is not None and not case.is_open:
        return _error(403, gettext("This case is closed: reopen it to upload studies into it."),
                      Lightbox_Refusal=Refusal.CASE_CLOSED)
    return _error(403, gettext("You may not upload studies into this case."),
                  Lightbox_Refusal=Refusal.CASE_FORBIDDEN)


def _may_append(request: HttpRequest, upload: Upload) -> HttpResponse | None:
    """The policy asked again before bytes are written (as at creation; the denial recorded):
    the case may have been closed, or the uploader's role changed, since the upload began, and
    the last byte files the studies into the case."""
    try:
        policy.require(request.user, Action.UPLOAD_STUDY, upload.case or upload.organization, request=request)
    except PermissionDenied:
        if upload.case is None:
            return _error(403, gettext("you may not upload studies to this organization"))
        return _case_refusal(Case.objects.filter(pk=upload.case_id).first())  # as it is now, not as read
    return None


def _maybe_complete(request: HttpRequest, upload: Upload) -> HttpResponse | None:
    """Once every byte is in, hand the upload to its ingest, which files its studies into the
    case: only if the policy still allows it. A body can take minutes to arrive after the check
    made before it (``_may_append``), and the case may have been closed or the uploader's
    membership ended meanwhile: asked again here (the denial recorded), the refusal is returned
    and the upload is not handed over; its bytes stay, and an empty PATCH at its offset hands it
    over once the policy allows it again."""
    if upload.length is not None and upload.offset >= upload.length:
        if (bad := _may_append(request, upload)) is not None:
            return bad
        uploads.upload_complete(upload=upload, request=request)
    return None


#: the per-file report lines an upload's status carries at most (``files_count`` says how many
#: there are; the upload page then says it lists only these and leads to the report page, which
#: lists them all), the files that need the uploader's attention first (as the study page's report)
STATUS_FILES = 1000
#: the session's key for the uploads whose status it was recorded reading (``_status_recorded``),
#: the last STATUS_SEEN_MAX of them
STATUS_SEEN_KEY = "imaging_upload_status_seen"
STATUS_SEEN_MAX = 100


def _status_recorded(request: HttpRequest, upload: Upload) -> None:
    """The status names the upload's files (often the patient) and its studies: its reading is
    recorded (``upload_report.viewed``, the upload its target), once per browser session and
    upload: the upload page polls it every few seconds while the ingest runs."""
    seen = request.session.get(STATUS_SEEN_KEY, [])
    if str(upload.public_id) in seen:
        return
    record(action=audit_actions.UPLOAD_REPORT_VIEWED, actor=request.user, organization_id=upload.organization_id,
           target=upload, request=request)
    request.session[STATUS_SEEN_KEY] = [*seen, str(upload.public_id)][-STATUS_SEEN_MAX:]


def _hidden_upload_recorded(request: HttpRequest, upload_id: UUID) -> None:
    """An upload the request may not reach (another organization's; another user's, for HEAD,
    PATCH, DELETE) is answered 404 as one that does not exist; when it exists, the probe is
    recorded in its organization's trail. Not the user's own upload hidden since (their
    membership ended): the upload page goes on polling its status every few seconds, and its
    HEAD is tus-js-client's resume; neither is a probe."""
    if Upload.objects.filter(public_id=upload_id, created_by=request.user).exists():
        return
    wanted = Action.VIEW_ORG_DATA if request.method == "GET" else Action.UPLOAD_STUDY
    record_hidden_refusal(user=request.user, model=Upload, public_id=upload_id, request=request,
                          wanted=wanted.value)


def _status_json(upload: Upload) -> dict:
    job = getattr(upload, "job", None)
    files = list(upload_job_lines(job=job)[:STATUS_FILES]) if job is not None else []
    out = {"id": str(upload.public_id), "state": upload.state, "offset": upload.offset, "length": upload.length,
           "filename": upload.filename, "job": None}
    if job is not None:
        out["job"] = {
            # ``state`` as stored (clients poll until it is neither queued nor running); ``outcome``
            # tells a finished job that imported nothing apart ("nothing_imported"), as its label does;
            # ``id``: the upload page asks for its studies' states by it afterwards (imaging:upload_states)
            "id": str(job.public_id), "state": job.state, "outcome": job.outcome, "state_label": job.outcome_label,
            "report_url": reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id}),
            "files_total": job.files_total, "files_ingested": job.files_ingested,
            "files_duplicate": job.files_duplicate, "files_skipped": job.files_skipped,
            "files_prepared": job.files_prepared,
            # a failed job says why and what can be done (a code and the reader's language), null otherwise
            "failure": {"code": failure.code, "message": failure.message} if (failure := job.failure) else None,
            "files": [{"path": f.path, "outcome": f.outcome, "outcome_label": str(f.get_outcome_display()),
                       "reason": f.reason, "reason_label": f.reason_shown, "severity": f.severity}
                      for f in files],
            # every line of the report so far: more than ``files`` when they were cut at STATUS_FILES
            "files_count": job.files.count() if len(files) == STATUS_FILES else len(files),
            "studies": [{"id": str(s.public_id), "url": s.get_absolute_url(), "state": s.state,
                         "state_label": str(s.get_state_display()), "version": s.version,
                         "description": s.study_description, "instances": s.images_now,
                         # in no case: the upload page's row says to attach it from its page
                         "in_case": s.case_id is not None,
                         # as many as it holds now, as imaging:upload_states says (with_images_now)
                         "instances_label": ngettext("%(n)s image", "%(n)s images", s.images_now)
                         % {"n": s.images_now}} for s in with_images_now(job.studies.all())],
        }
    return out


@never_cache
@policy.serves(Action.VIEW_ORG_DATA)
def upload_detail(request: HttpRequest, upload_id: UUID) -> HttpResponse:
    """HEAD (offset), PATCH (append), DELETE (termination); GET returns the status and the
    per-file report as JSON (not part of tus)."""
    if request.method not in UPLOAD_METHODS.split(", "):  # whichever upload it names
        return _error(405, gettext("method not allowed"), Allow=UPLOAD_METHODS)
    if request.method == "OPTIONS":
        # tus discovery: what the server speaks, whoever asks and whichever upload the URL names
        # (nothing about the upload, so not whether it exists), as on /api/v1/uploads/
        return _resp(204, Tus_Version=TUS_VERSION, Tus_Extension=EXTENSIONS)
    if bad := _unauthenticated(request):
        return bad
    visible = Upload.objects.visible_to(request.user)
    if request.method in ("HEAD", "PATCH", "DELETE"):
        visible = visible.filter(created_by=request.user)  # only the uploader writes to it
    upload = visible.select_related("organization", "case").filter(public_id=upload_id).first()
    if upload is None:
        _hidden_upload_recorded(request, upload_id)
        return _error(404, gettext("no such upload"))
    if request.method == "GET":
        # the per-file report names files as the export named them (a patient's name, often): the
        # organization's own record, for its staff, as the study page shows it; a grant on the
        # case (VIEW_CASE) does not give it. Refused as no upload, the denial recorded.
        try:
            policy.require(request.user, Action.VIEW_ORG_DATA, upload, request=request)
        except PermissionDenied:
            return _error(404, gettext("no such upload"))
        _status_recorded(request, upload)
        return JsonResponse(_status_json(upload))
    if bad := _check_version(request):
        return bad
    if (ended := _ended(upload)) is not None:
        return ended
    if request.method == "HEAD":
        # its staging file lost: the upload cannot resume, and says so (410) instead of an offset;
        # the staging folder itself not there (its volume not mounted): 503, the upload kept
        try:
            lost = upload.state == UploadState.UPLOADING and uploads.upload_staging_lost(upload)
        except OSError as exc:
            return _storage_unavailable(upload, exc)
        if lost and (ended := _ended(upload)) is not None:
            return ended
        headers = {"Upload_Offset": str(upload.offset), "Upload_Expires": _expires(upload)}
        if upload.length is not None:
            headers["Upload_Length"] = str(upload.length)
        return _resp(200, **headers)
    if request.method == "DELETE":
        if not uploads.upload_terminate(upload=upload, by=request.user, request=request):
            # every byte is in and the ingest has it: its staging file stays for the ingest
            return _error(409, gettext("this upload is finished: it can no longer be cancelled"))
        return _resp(204)
    if not request.headers.get("Content-Type", "").startswith(OCTET):
        return _error(415, gettext("Content-Type must be %(type)s") % {"type": OCTET})
    offset = header_number(request.headers.get("Upload-Offset"), past=_PAST_ANY_UPLOAD)
    if offset is None:
        if "Upload-Offset" in request.headers:
            return _not_a_number("Upload-Offset")
        return _error(400, gettext("Upload-Offset is required"))
    if offset != upload.offset:
        return _offset_conflict(upload.offset)
    if upload.state != UploadState.UPLOADING:
        return _resp(204, Upload_Offset=str(upload.offset))
    if (bad := _may_append(request, upload)) or (bad := _write_body(request, upload)):
        return bad
    with transaction.atomic():
        if (bad := _maybe_complete(request, upload)) is not None:
            return bad
    return _resp(204, Upload_Offset=str(upload.offset), Upload_Expires=_expires(upload))
