"""Upload sessions (tus): creation, appends into the encrypted staging file, completion,
termination and expiry. The HTTP side is apps.imaging.tus; this module holds no HTTP."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from apps.imaging import follow, keys, staging
from apps.imaging.models import Upload, UploadState
from apps.imaging.storage import STORAGE_ERRORS
from apps.sharing import policy
from apps.sharing.policy import Action

logger = logging.getLogger(__name__)


def _aad(upload: Upload) -> bytes:
    return f"upload:{upload.public_id}".encode()


def expiry_from_now():
    return timezone.now() + timedelta(hours=settings.LIGHTBOX_UPLOAD_EXPIRY_HOURS)


def upload_create(*, organization, user, length: int | None, filename: str = "", metadata: dict | None = None,
                  case=None, request=None) -> Upload:
    """Start an upload. Into ``case`` only if the policy lets ``user`` upload into it (an open
    case: ``policy.upload_cases``); PermissionDenied (recorded) otherwise, and nothing is made.
    The row and its imaging.upload_created event are one transaction (neither without the other;
    the staging file of a row not saved is removed)."""
    if case is not None:
        policy.require(user, Action.UPLOAD_STUDY, case, request=request)
    upload = Upload(organization=organization, created_by=user, length=length, filename=filename[:255],
                    metadata=metadata or {}, case=case, expires_at=expiry_from_now())
    _key, upload.key_id, upload.wrapped_key = staging.new_key(_aad(upload))
    upload.staging_name = f"{upload.public_id}.part"
    staging_ready()  # a staging folder missing while uploads are staged in it saves no row (StagingUnavailable)
    staging.staging_create(upload.staging_name)  # first: a folder that cannot be written saves no row (OSError)
    try:
        with transaction.atomic():
            upload.save()
            record(action="imaging.upload_created", actor=user, organization=organization, target=upload,
                   request=request, case=case, details={"length": length})
    except BaseException:
        _staging_files_delete(upload)  # nothing was prepared from it: no row names it
        raise
    return upload


def staging_ready() -> None:
    """The staging folder can take a new upload's file: there, holding its marker
    (``staging.staging_dir``). A folder missing, or empty without its marker, is made and marked
    only while no upload has a staging file (a new installation, or every upload has ended). While
    uploads have theirs in it, such a folder is not theirs (its volume is not mounted):
    StagingUnavailable, nothing made, so that the volume is found with its files once it is back.
    A folder that really lost them is declared lost by an operator: ``manage.py staging_lost``
    (``staging_declare_lost``), which ends the uploads and jobs that needed it and makes it again.

    Every upload ``uploads_staged`` counts blocks, not only those that can still make progress:
    one past its time, or a failed job past its keep period, is ended by its sweep
    (``uploads_expire``, ``failed_uploads_discard``, both without the folder), and one that can
    still go on (arriving, its job queued or running, or failed and kept for ``--resume``) is
    exactly what an unmounted volume would lose if an empty folder were made in its place."""
    try:
        staging.staging_dir()
        return
    except staging.StagingUnavailable:
        if uploads_staged().exists():
            logger.warning("the staging folder (LIGHTBOX_UPLOAD_DIR) is missing, or empty without its %s, while "
                           "uploads are staged in it: is its volume mounted? Uploads get 503 until it is back. If "
                           "the folder and its files are really lost, run manage.py staging_lost",
                           staging.MARKER)
            raise
    staging.staging_mark()


def upload_key(upload: Upload) -> bytes:
    return keys.unwrap_key(upload.key_id, upload.wrapped_key, aad=_aad(upload))


class UploadClosed(Exception):
    """The upload takes no more bytes, as read once its staging file's lock is held: cancelled,
    expired (swept, or past its time) or finished (``upload_writer``)."""


def upload_takes_bytes(upload: Upload) -> bool:
    """Still uploading and not past its time (what the tus view checks before it writes)."""
    return upload.state == UploadState.UPLOADING and upload.expires_at >= timezone.now()


def upload_writer(upload: Upload, wait: float = 0) -> staging.StagingWriter:
    """The staging file, locked for appending: one writer per upload at a time, whichever
    process serves the request (waits up to ``wait`` seconds for another writer;
    BlockingIOError after that).

    The writer starts at the offset read from the database once the lock is held, never at one
    read before (``upload.offset``): the holder before may have moved it while this one waited
    (a live request finishing its chunk, a cut one keeping what arrived), and cutting the file
    back to a stale offset destroyed bytes it had written and counted. Only bytes past the
    committed offset (never counted) are cut. The caller checks the offset again once it holds
    the lock and writes nothing if it moved. The writer that moves the offset commits it before
    closing, which unlocks: callers are not inside a transaction (the next holder would read the
    offset from before it).

    ``upload``'s offset, state and expiry are read again under the lock (into ``upload``):
    cancelling and the expiry sweep do not wait for the lock (they claim the upload, commit, then
    delete its staging file), so the upload may have ended while this waited. UploadClosed, with
    nothing written and no file made, when it takes no more bytes (``upload_takes_bytes``);
    Upload.DoesNotExist when its row is gone. A staging file missing while the upload still takes
    bytes (lost from the folder) is never made again empty: the upload is expired
    (``upload_staging_lost``) and UploadClosed raised. A staging folder that is not there (its
    volume not mounted: ``staging.staging_dir``) is StagingUnavailable, the upload left as it is."""
    fields = ["offset", "state", "expires_at"]
    try:
        writer = staging.StagingWriter(staging.staging_path(upload.staging_name), upload_key(upload), wait=wait)
    except FileNotFoundError:
        upload.refresh_from_db(fields=fields)  # the claim is committed before the file is deleted
        if upload_takes_bytes(upload) and not upload_staging_lost(upload):
            raise
        raise UploadClosed from None
    try:
        upload.refresh_from_db(fields=fields)
        if not upload_takes_bytes(upload):
            raise UploadClosed
        writer.begin(upload.offset)
    except BaseException:
        writer.close()
        raise
    return writer


def _upload_expire(upload: Upload, *, staging_lost: bool = False, **still: Any) -> bool:
    """Claim ``upload`` expired and record it (imaging.upload_expired; ``staging_lost`` when its
    staging file or folder is gone), in one transaction: a conditional UPDATE on its row still
    ``uploading`` (and matching ``still``, e.g. still past its time), so that an upload that ended
    or was renewed meanwhile is left alone and the expiry is recorded once. False when not claimed."""
    with transaction.atomic():
        if not Upload.objects.filter(pk=upload.pk, state=UploadState.UPLOADING, **still).update(
                state=UploadState.EXPIRED):
            return False
        details = {"bytes": upload.offset, "staging_lost": True} if staging_lost else {"bytes": upload.offset}
        record(action="imaging.upload_expired", organization_id=upload.organization_id, target=upload,
               details=details)
    return True


def upload_staging_lost(upload: Upload) -> bool:
    """An upload still taking bytes whose staging file is gone from the staging folder (deleted by
    hand, a restore that missed it): what it received is lost, and nothing can resume it. It is
    expired now, claimed as the expiry sweep claims one (a conditional UPDATE: an upload that ended
    meanwhile is left alone) and recorded as the sweep records it, so that the client is told the
    upload is gone (410) and starts a new one, instead of a 503 at each resume until it expired.
    True when its file is gone (the upload expired by this call, or it had ended meanwhile:
    ``upload`` holds its state then); False, and nothing changed, while its file is there.
    StagingUnavailable, and nothing changed, when the staging folder itself is not there (its
    volume not mounted): the file is not known to be gone, and the upload resumes once it is back."""
    if staging.staging_path(upload.staging_name).exists():
        return False
    if not _upload_expire(upload, staging_lost=True):
        upload.refresh_from_db(fields=["offset", "state", "expires_at"])
        return True
    upload.state = UploadState.EXPIRED
    logger.warning("upload %s: its staging file is gone while it took bytes; expired", upload.pk)
    upload_discard_staging(upload)  # what it prepared, and its .stop and .iv files
    return True


def upload_open(upload: Upload):
    """A seekable plaintext reader over the staged bytes (buffered)."""
    import io

    raw = staging.StagingReader(staging.staging_path(upload.staging_name), upload_key(upload), upload.offset)
    return io.BufferedReader(raw, buffer_size=1024 * 1024)


def upload_complete(*, upload: Upload, request=None):
    """All bytes are in: hand over to ingest (the task is queued on commit)."""
    from apps.imaging.services import ingest_job_create

    with transaction.atomic():
        claimed = Upload.objects.filter(pk=upload.pk, state=UploadState.UPLOADING).update(
            state=UploadState.COMPLETE, completed_at=timezone.now())
        if not claimed:
            return None
        upload.refresh_from_db()
        record(action="imaging.upload_completed", actor=upload.created_by, organization_id=upload.organization_id,
               target=upload, request=request, case=upload.case, details={"bytes": upload.offset})
        return ingest_job_create(organization=upload.organization, upload=upload, created_by=upload.created_by)


def upload_discard_staging(upload: Upload) -> None:
    """Delete what the upload staged: its prepared entries (and the blobs no instance took),
    then its staging file."""
    follow.prepared_discard(upload)
    _staging_files_delete(upload)


def _ended_discard_staging(upload: Upload) -> None:
    """``upload_discard_staging`` for an upload whose end (cancelled, expired) is committed: an
    error (the staging folder not there, its volume not mounted; storage down) is logged, its type
    only, and what it staged is left over for ``staging_leftovers_delete``; the end stands."""
    try:
        upload_discard_staging(upload)
    except STORAGE_ERRORS as exc:
        logger.warning("upload %s: ended, what it staged not deleted (%s); left for the sweep", upload.pk,
                       type(exc).__name__)


def _staging_files_delete(upload: Upload) -> None:
    for name in (upload.staging_name, f"{upload.staging_name}.stop", f"{upload.staging_name}.iv"):
        try:
            os.unlink(staging.staging_path(name))
        except FileNotFoundError:
            pass


def upload_terminate(*, upload: Upload, by, request=None) -> bool:
    """Abandon an unfinished upload and delete what it staged. Claimed first (a conditional
    UPDATE): an upload that is no longer ``uploading`` (its last byte arrived, so its ingest job
    reads the staging file; or it expired) is left alone and False returned. The claim and its
    imaging.upload_deleted event are one transaction; what it staged is deleted once both are in."""
    with transaction.atomic():
        if not Upload.objects.filter(pk=upload.pk, state=UploadState.UPLOADING).update(
                state=UploadState.TERMINATED):
            return False
        record(action="imaging.upload_deleted", actor=by, organization_id=upload.organization_id, target=upload,
               request=request, details={"bytes": upload.offset})
    _ended_discard_staging(upload)
    return True


def uploads_expire(now=None) -> int:
    """Expire unfinished uploads past their time and delete their staging files. Each upload is
    claimed first (a conditional UPDATE): one that left ``uploading`` since it was listed (its last
    chunk completed it, or another run expired it), or that an append renewed, is left alone, so
    its staging file stays for its ingest job (or its uploader) and the expiry is recorded once. An
    append under way when its upload is claimed keeps nothing (``upload_writer``, tus ``_advance``).
    The claim and its record are one transaction; what the upload staged is deleted once both are
    in (left over when that fails: the staging folder not there, say)."""
    now = now or timezone.now()
    n = 0
    for upload in Upload.objects.expired(now):
        # still past its time as well: an append that began before its time ran out and ended
        # since the listing renewed it (its 204 said until when), and its bytes stay
        if not _upload_expire(upload, expires_at__lt=now):
            continue
        _ended_discard_staging(upload)
        n += 1
    return n


def failed_uploads_discard(now=None) -> int:
    """Discard the staged file of each upload whose ingest job failed
    ``LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS`` ago or more (schedule it). A failed job keeps it so that
    ``manage.py ingest --resume`` can finish the job; past that time it is not kept for ever. Each
    job is claimed first (a conditional UPDATE on ``upload_discarded_at``, the job still failed):
    a job resumed meanwhile is left alone, and the discard is recorded once. From then on the job's
    failure asks the uploader to upload the file again, and ``--resume`` says the file is gone.

    A staging folder that is not there (``staging.StagingUnavailable``: its volume not mounted, or
    lost) does not keep the job from being discarded: past its keep period its file is not used
    any more, whether the folder comes back or not. The discard is recorded (``staging_unavailable``)
    and the file, if the folder comes back, is deleted by ``staging_leftovers_delete``; otherwise
    such a job would count as staged for ever, and a lost folder would never be made again
    (``staging_ready``)."""
    from apps.imaging.models import IngestJob, JobState

    now = now or timezone.now()
    keep = timedelta(days=settings.LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS)
    due = IngestJob.objects.filter(state=JobState.FAILED, upload__isnull=False, upload_discarded_at__isnull=True,
                                   finished_at__lt=now - keep)
    n = 0
    for job in due.select_related("upload", "case").order_by("pk"):
        # claim, discard and record in one transaction: a discard that fails (storage down)
        # leaves the job unclaimed, for the next sweep, instead of marked discarded with its file kept
        try:
            with transaction.atomic():
                if not due.filter(pk=job.pk).update(upload_discarded_at=now):
                    continue
                details = {"job": str(job.public_id), "bytes": job.upload.offset,
                           "kept_days": settings.LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS}
                try:
                    upload_discard_staging(job.upload)
                except staging.StagingUnavailable:
                    details["staging_unavailable"] = True  # its file, if the folder comes back: the sweep's
                    logger.warning("ingest job %s: its failed upload is discarded while the staging folder is not "
                                   "there; its file is deleted by the leftovers sweep if the folder comes back",
                                   job.pk)
                record(action="imaging.upload_discarded", organization_id=job.organization_id, target=job.upload,
                       case=job.case, details=details)
        except STORAGE_ERRORS as exc:
            logger.warning("ingest job %s: its failed upload's staged file not discarded (%s); the next sweep "
                           "tries again", job.pk, type(exc).__name__)
            continue
        n += 1
    return n


def uploads_staged():
    """Uploads whose staging file may still be there, so whose data key is still needed: all but
    those cancelled or expired (the file goes once the upload is claimed), those whose ingest job
    ended done (the file goes with the job's end) and those whose failed job's file was discarded
    (``failed_uploads_discard``). A finished upload's file stays while its job is queued or
    running, and after it failed (``manage.py ingest --resume``). Told from the rows, not from the
    folder: a host that does not see LIGHTBOX_UPLOAD_DIR finds no file, and a key left unwrapped
    for that reason is lost once its master key is removed."""
    from apps.imaging.models import JobState

    return (Upload.objects.exclude(state__in=[UploadState.TERMINATED, UploadState.EXPIRED])
            .exclude(job__state__in=[JobState.DONE, JobState.DONE_WITH_WARNINGS])
            .exclude(job__upload_discarded_at__isnull=False))


#: a file in the staging folder that no upload names is deleted once it is this old: an upload's
#: file is made just before its row is saved (``upload_create``), and a process killed in between
#: leaves it
UNNAMED_STAGING_AGE = timedelta(days=1)
#: side files of a staging file (``<name>.stop``, ``<name>.iv``)
_SIDE_SUFFIXES = (".stop", ".iv")


def staging_leftovers_delete(now=None) -> int:
    """Delete what ended uploads left in the staging folder (schedule it): their deletion at the end
    failed (the folder unwritable or not there: ``_ended_discard_staging``; a job done whose
    deletion failed after its commit: ``services.ingest_job_run``), and nothing else ever deleted
    it. Told from the folder: a file is kept while its upload still needs it (``uploads_staged``:
    arriving, or its ingest job queued, running, or failed and kept for ``--resume``); one of an
    upload that ended (cancelled, expired, ingested, or failed and discarded: none of those takes
    bytes or is read again) goes with what it prepared (``upload_discard_staging``); one that no
    upload names goes once ``UNNAMED_STAGING_AGE`` old. Nothing is done while the staging folder is
    not there (``staging.staging_dir``). A deletion that fails is logged, its type only, and tried
    again by the next sweep. Returns the number of uploads (or unnamed files) whose files went."""
    try:
        root = staging.staging_dir()
    except staging.StagingUnavailable:
        logger.warning("staging leftovers: the staging folder (LIGHTBOX_UPLOAD_DIR) is not there; nothing swept")
        return 0
    now = now or timezone.now()
    files: dict[str, list[os.DirEntry]] = {}
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name == staging.MARKER or entry.is_dir(follow_symlinks=False):
                continue
            name = next((entry.name.removesuffix(s) for s in _SIDE_SUFFIXES if entry.name.endswith(s)), entry.name)
            files.setdefault(name, []).append(entry)
    names = sorted(files)
    needed: set[str] = set()
    rows: dict[str, Upload] = {}
    for at in range(0, len(names), 500):  # SQLite takes a bounded number of parameters
        chunk = names[at:at + 500]
        # the rows read first: one not needed when read again after has ended, and an upload that
        # ended is ended for good (a row saved in between is not among them: its file is kept)
        rows.update((u.staging_name, u) for u in Upload.objects.filter(staging_name__in=chunk))
        needed.update(uploads_staged().filter(staging_name__in=chunk).values_list("staging_name", flat=True))
    n = 0
    old = (now - UNNAMED_STAGING_AGE).timestamp()
    for name in names:
        if name in needed:
            continue
        try:
            if (upload := rows.get(name)) is not None:  # ended
                upload_discard_staging(upload)
            elif all(entry.stat(follow_symlinks=False).st_mtime < old for entry in files[name]):
                for entry in files[name]:
                    os.unlink(entry.path)
            else:
                continue  # no row names it yet: an upload being made
        except FileNotFoundError:
            pass  # deleted meanwhile (its job's own deletion, another sweep)
        except STORAGE_ERRORS as exc:
            logger.warning("staging leftovers: upload %s's files not deleted (%s); the next sweep tries again",
                           getattr(rows.get(name), "pk", "-"), type(exc).__name__)
            continue
        n += 1
    if n:
        logger.info("staging leftovers: deleted the files of %s ended upload(s) or unnamed file(s)", n)
    return n


class StagingNotLost(Exception):
    """``staging_declare_lost``: the staging folder is there with its marker; nothing is lost."""


def staging_declare_lost(now=None) -> dict[str, int]:
    """An operator's declaration (``manage.py staging_lost``) that the staging folder and its files
    are lost for good (the host rebuilt, the volume gone), not only unmounted: every upload that
    needed it is ended, recorded as its sweeps record it, and the folder is made again with its
    marker (``staging.staging_mark``), so that uploads are taken again (``staging_ready``).
    Uploads still arriving are expired (``staging_lost``); ingest jobs queued, running or failed
    with their file kept are failed (their file unreadable) and their file counted as discarded
    (``upload_discarded_at``): the uploader is asked to upload it again. Each row is claimed by a
    conditional UPDATE, with its record in one transaction. StagingNotLost, and nothing changed,
    while the folder is there with its marker. Returns the numbers ended."""
    from apps.imaging.models import IngestJob, JobState
    from apps.imaging.services import _job_fail

    try:
        staging.staging_dir()
    except staging.StagingUnavailable:
        pass
    else:
        raise StagingNotLost
    now = now or timezone.now()
    counts = {"uploads_expired": 0, "jobs_failed": 0, "uploads_discarded": 0}
    for upload in Upload.objects.filter(state=UploadState.UPLOADING).order_by("pk"):
        if not _upload_expire(upload, staging_lost=True):
            continue
        _prepared_discard_logged(upload)
        counts["uploads_expired"] += 1
    for job_id in IngestJob.objects.filter(upload__isnull=False, state__in=[JobState.QUEUED, JobState.RUNNING]) \
            .order_by("pk").values_list("pk", flat=True):
        # its staged file is gone: read as an unreadable file (models.FAILURE_CODES)
        claim = IngestJob.objects.filter(pk=job_id, state__in=[JobState.QUEUED, JobState.RUNNING])
        counts["jobs_failed"] += _job_fail(claim, job_id, error="FileNotFoundError")
    kept = IngestJob.objects.filter(state=JobState.FAILED, upload__isnull=False, upload_discarded_at__isnull=True)
    for job in kept.select_related("upload", "case").order_by("pk"):
        with transaction.atomic():
            if not kept.filter(pk=job.pk).update(upload_discarded_at=now):
                continue
            record(action="imaging.upload_discarded", organization_id=job.organization_id, target=job.upload,
                   case=job.case, details={"job": str(job.public_id), "bytes": job.upload.offset,
                                           "staging_lost": True})
        _prepared_discard_logged(job.upload)
        counts["uploads_discarded"] += 1
    staging.staging_mark()
    logger.warning("the staging folder (LIGHTBOX_UPLOAD_DIR) was declared lost and made again: %s upload(s) "
                   "expired, %s ingest job(s) failed, %s failed upload(s) discarded", counts["uploads_expired"],
                   counts["jobs_failed"], counts["uploads_discarded"])
    return counts


def _prepared_discard_logged(upload: Upload) -> None:
    """What the ended upload prepared (its blobs no instance took), its staging file being gone;
    storage down is logged, its type only (the blobs sweep finds what no entry names)."""
    try:
        follow.prepared_discard(upload)
    except STORAGE_ERRORS as exc:
        logger.warning("upload %s: ended, what it prepared not deleted (%s)", upload.pk, type(exc).__name__)


def upload_rewrap(upload: Upload, *, key_id: str) -> bool:
    """Re-wrap the upload's data key with the master key ``key_id``; the staged bytes stay as they
    are. One conditional UPDATE (the row still on the key it was read with), committed at once:
    a rotation stopped half way leaves each row on its old key or on the new one, both readable
    while both are configured, and the next run goes on. False when there was nothing to do."""
    if upload.key_id == key_id:
        return False
    kid, wrapped = keys.wrap_key(upload_key(upload), aad=_aad(upload), key_id=key_id)
    return bool(Upload.objects.filter(pk=upload.pk, key_id=upload.key_id).update(key_id=kid, wrapped_key=wrapped))
