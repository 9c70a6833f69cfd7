"""Renditions: made once per study version after ingest, each file recorded or explained.

``study_renditions_make(study_id=...)`` is idempotent and resumable: a file row is keyed by
(rendition, instance), so a re-run (the task is ``acks_late``) makes only what is missing; each
original is read (decrypted) once and every kind made from those bytes. A file that cannot be
made gets a row with status "unavailable" and the reason; the original is always kept.

An education file is a DICOM file and, beside it (``image_blob``), the labelled JPEG image that
the education package holds in its place; an education file made before the package held images
gets its image from ``education_images_ensure`` (the next run, or the first package asked for).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_noop
from pydicom.uid import UID, JPEGBaseline8Bit

from apps.core import i18n
from apps.core.i18n import Deferred
from apps.core.queue import lost_tasks_send, send_on_commit
from apps.imaging import pixels
from apps.imaging.blobs import AlteredBlobRead, content_fields, open_blob, put_blob_locked, row_with_content_create
from apps.imaging.checksums import crc32
from apps.imaging.models import Instance, Study
from apps.imaging.storage import STORAGE_ERRORS
from apps.renditions import encoders
from apps.renditions.models import (
    KIND_LABEL,
    LOSSY_SOURCE_KIND_LABEL,
    Kind,
    Rendition,
    RenditionFile,
    RenditionRun,
    Status,
    label_for,
    renditions_progress,
)

logger = logging.getLogger(__name__)

#: the order in which lossless codecs are tried; the first whose copy decodes to identical pixels
#: is stored (JPEG-LS: best ratio and speed on CT/MR in bench/renditions.py)
LOSSLESS_PREFERENCE = ("jpeg-ls", "jpeg2000", "rle")
#: an original read as a stream (``_original_read``) is decrypted this many bytes at a time, at most
READ_CHUNK = 1024 * 1024


def renditions_queue(*, study_id: int) -> None:
    """Queue the renditions of a study once the current transaction commits (ids only; sent again
    if the broker cannot take it then: ``apps.core.queue``)."""
    if not getattr(settings, "LIGHTBOX_RENDITIONS_AFTER_INGEST", True):
        return
    from apps.renditions.tasks import study_renditions_task

    # recorded as queued and not started (again, for a study that gets more images): a task the
    # queue loses is sent again by the sweep (study_renditions_lost_send)
    RenditionRun.objects.update_or_create(study_id=study_id, defaults={
        "queued_at": timezone.now(), "started_at": None, "task_id": "", "resent_at": None, "resends": 0})
    send_on_commit(study_renditions_task, study_id)


def study_renditions_claim(*, study_id: int, task_id: str) -> bool:
    """The task ``task_id`` starts the renditions of a study: True if it is to make them. It
    claims a run that is queued, or that it started itself (a worker killed mid-run: its message
    delivered again); a run started by another message (a duplicate sent again while the first
    still waited, or after the first finished) is left to it. A study with no run (queued before
    runs were recorded, or one the sweep gave up on, whose message came late) is made."""
    run = RenditionRun.objects.filter(study_id=study_id)
    if run.filter(Q(started_at__isnull=True) | Q(task_id=task_id)).update(started_at=timezone.now(), task_id=task_id):
        return True
    if run.exists():
        logger.info("renditions of study %s: started by another task; task %s leaves them", study_id, task_id)
        return False
    return True


def key_instance_ids(instances: Iterable[Instance]) -> set[int]:
    """Key images for the education export: the middle image of each series (by instance
    number). A study has no key-object selection in the index, so the rule is positional."""
    by_series: dict[int, list[Instance]] = {}
    for inst in instances:
        by_series.setdefault(inst.series_id, []).append(inst)
    keys = set()
    for items in by_series.values():
        items.sort(key=lambda i: (i.instance_number if i.instance_number is not None else 0, i.pk))
        keys.add(items[(len(items) - 1) // 2].pk)
    return keys


def _rendition_row(study: Study, kind: str) -> Rendition:
    row, _ = Rendition.objects.get_or_create(study=study, kind=kind, defaults={
        "organization_id": study.organization_id, "label": KIND_LABEL[Kind(kind)]})
    return row


def _make(kind: str, inst: Instance, data: bytes | None, facts: encoders.SourceFacts | None,
          facts_reason: str, *, crc: int | None = None) -> dict:
    """The fields of one RenditionFile row (without its keys). Its label is its kind's for its
    source (``models.label_for``), whether or not its file could be made: a lossy source is never
    labelled diagnostic-grade, whatever the rendition. ``data``: the original's bytes; None for
    the original kind when ``crc``, its CRC-32 read as a stream, is given (``_original_read``)."""
    fields = _make_fields(kind, inst, data, facts, facts_reason, crc)
    fields["label"] = label_for(kind, source_lossy=fields["source_lossy"])
    return fields


def _make_fields(kind: str, inst: Instance, data: bytes | None, facts: encoders.SourceFacts | None,
                 facts_reason: str, crc: int | None = None) -> dict:
    # an original whose header cannot be read now (facts None) is judged by the transfer syntax
    # its ingest recorded: never called diagnostic-grade on a guess
    lossy_source = facts.lossy if facts else pixels.transfer_syntax_lossy(inst.transfer_syntax_uid or "")
    base = {"original_bytes": inst.size, "source_lossy": lossy_source,
            "identity_removed": bool(facts and facts.identity_removed)}
    if kind == Kind.ORIGINAL:
        return {**base, "status": Status.READY, "codec": inst.transfer_syntax_uid, "extension": "dcm",
                "blob_id": inst.blob_id, "sha256": inst.sha256, "crc32": crc32(data) if crc is None else crc,
                "bytes": inst.size, "lossy": lossy_source, "rows": inst.rows, "columns": inst.columns}
    if facts is None:
        return {**base, "status": Status.UNAVAILABLE, **i18n.explained(facts_reason)}
    frame = _key_frame(inst)
    try:
        if kind == Kind.LOSSLESS:
            # the first codec whose copy decodes to the original's pixels; the original read and
            # decoded once for them all, each distinct reason kept when none can
            codec, encoded = encoders.lossless_encode_first(data, LOSSLESS_PREFERENCE)
            return {**base, **content_fields(encoded), "status": Status.READY,
                    "codec": encoders.LOSSLESS_CODECS[codec],
                    "extension": "dcm", "rows": inst.rows, "columns": inst.columns}
        if kind == Kind.PREVIEW:
            jpeg, columns, rows = encoders.preview_jpeg(data, frame)
            return {**base, **content_fields(jpeg), "status": Status.READY,
                    "codec": "image/jpeg", "extension": "jpg", "lossy": True,
                    "rows": rows, "columns": columns}
        if kind == Kind.EDUCATION:
            export = encoders.education_export(data, frame)
            return {**base, **content_fields(export.dicom), **_image_fields(export.jpeg), "status": Status.READY,
                    "codec": JPEGBaseline8Bit, "extension": "dcm",
                    "lossy": True, "rows": export.rows, "columns": export.columns}
    except encoders.NotEncodable as exc:
        return {**base, "status": Status.UNAVAILABLE, **i18n.explained(exc.reason)}
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop a study's other renditions
        logger.warning("renditions: %s failed for instance %s (%s)", kind, inst.pk, type(exc).__name__)
        return {**base, "status": Status.UNAVAILABLE,
                **i18n.explained(Deferred(gettext_noop("Not made: an unexpected error (recorded in the "
                                                            "portal's log).")))}
    raise ValueError(kind)


def _key_frame(inst: Instance) -> int:
    """The frame of an instance its preview and education images show: the middle one."""
    return max(inst.frames or 1, 1) // 2


def _image_fields(jpeg: bytes) -> dict:
    """An education file's image fields, and its bytes as ``image_content`` (``_file_create``)."""
    return {"image_content": jpeg, "image_sha256": hashlib.sha256(jpeg).hexdigest(), "image_crc32": crc32(jpeg),
            "image_bytes": len(jpeg)}


def _file_create(rendition: Rendition, inst: Instance, fields: dict) -> RenditionFile | None:
    """Insert the file's row (fields from ``_make``), its bytes (and an education file's image)
    stored in the row's transaction (renditions of the same bytes share a blob); None if another
    run made it meanwhile."""
    image = fields.pop("image_content", None)
    with transaction.atomic():
        if image is not None:
            fields["image_blob"] = put_blob_locked(io.BytesIO(image), sha256=fields["image_sha256"])
        row = row_with_content_create(RenditionFile, organization_id=inst.organization_id, study_id=inst.study_id,
                                      rendition=rendition, instance=inst, kind=rendition.kind, **fields)
        if row is None:
            transaction.set_rollback(True)  # another run's row (and its image) is the one kept
        return row


def education_images_ensure(*, study: Study) -> None:
    """The labelled JPEG image of each ready education file of a study that has none (made before
    the education package held images), made now from its original, as the file was: a package
    needs it before its first byte. A file whose image cannot be made is left without one, and
    the package says it is not included."""
    lacking = (RenditionFile.objects.filter(study=study, kind=Kind.EDUCATION, status=Status.READY,
                                            image_blob__isnull=True).select_related("instance__blob"))
    for file in lacking:
        try:
            with open_blob(file.instance.blob) as fh:  # only the key frame's bytes are read
                fields = _image_fields(encoders.education_labelled_jpeg(fh, _key_frame(file.instance)))
        except InvalidTag as exc:
            # its original's stored bytes were altered: not a reason to leave the image out
            # quietly; raised naming the image, for the caller to record
            raise AlteredBlobRead(file.instance) from exc
        except STORAGE_ERRORS:
            raise  # the stored file could not be read: not a reason to leave the image out
        except Exception as exc:  # noqa: BLE001 - the package leaves this one image out and says so
            logger.warning("renditions: education image not made for file %s (%s)", file.public_id,
                           type(exc).__name__)
            continue
        with transaction.atomic():
            blob = put_blob_locked(io.BytesIO(fields.pop("image_content")), sha256=fields["image_sha256"])
            if not RenditionFile.objects.filter(pk=file.pk, image_blob__isnull=True).update(image_blob=blob, **fields):
                transaction.set_rollback(True)  # made meanwhile by another


def study_renditions_make(*, study_id: int, kinds: Iterable[str] = tuple(Kind)) -> dict[str, Rendition]:
    """Make every missing rendition file of a ready study. Safe to run any number of times."""
    study = Study.objects.get(pk=study_id)
    if not study.is_ready:
        return {}
    kinds = [Kind(k) for k in kinds]
    renditions = {kind: _rendition_row(study, kind) for kind in kinds}
    instances = list(Instance.objects.filter(study=study).select_related("blob")
                     .order_by("series_id", "instance_number", "id"))
    keys = key_instance_ids(instances)
    done = set(RenditionFile.objects.filter(study=study).values_list("rendition_id", "instance_id"))
    for inst in instances:
        needed = [k for k in kinds if (renditions[k].pk, inst.pk) not in done
                  and (k != Kind.EDUCATION or inst.pk in keys)]
        if not needed:
            continue
        if needed == [Kind.ORIGINAL]:
            # the original's row needs no pixels: read as a stream, as a package's request does
            crc, facts, facts_reason = _original_read(inst)
            _file_create(renditions[Kind.ORIGINAL], inst, _make(Kind.ORIGINAL, inst, None, facts, facts_reason,
                                                                crc=crc))
            continue
        # the lossless copy encodes every frame, the preview and education copy decode one; their
        # encoders take the file's bytes (one read serves every kind)
        with open_blob(inst.blob) as fh:
            data = fh.read()
        try:
            facts, facts_reason = encoders.source_facts(data), ""
        except encoders.NotEncodable as exc:
            facts, facts_reason = None, exc.reason
        for kind in needed:
            _file_create(renditions[kind], inst, _make(kind, inst, data, facts, facts_reason))
    if Kind.EDUCATION in kinds:
        education_images_ensure(study=study)
    for rendition in renditions.values():
        rendition_summarize(rendition)
    return renditions


def originals_ensure(*, study: Study) -> None:
    """The original rendition rows (sha256, CRC-32, labels) of every instance of a study, made
    now for instances the task has not reached (a package needs them before its first byte).
    Each original is read as a stream (``_original_read``), in the request that asks: never held
    whole, whatever its size."""
    rendition = _rendition_row(study, Kind.ORIGINAL)
    missing = Instance.objects.filter(study=study).exclude(rendition_files__rendition=rendition).select_related("blob")
    made = False
    for inst in missing:
        try:
            crc, facts, reason = _original_read(inst)
        except InvalidTag as exc:  # its stored bytes were altered: raised naming the image, to be recorded
            raise AlteredBlobRead(inst) from exc
        _file_create(rendition, inst, _make(Kind.ORIGINAL, inst, None, facts, reason, crc=crc))
        made = True
    if made or rendition.status == Status.PENDING:
        rendition_summarize(rendition)


def _original_read(inst: Instance) -> tuple[int, encoders.SourceFacts | None, str]:
    """The CRC-32 of an instance's original and its facts (``encoders.source_facts``, or None and
    why not), read from its blob as a stream: the CRC over its decrypted chunks one at a time,
    then the header (and, only where the facts need it, the rest of the data set with its pixel
    data left in the file). Memory stays within a few chunks whatever the instance's size; a
    stored file that cannot be read (storage, or bytes altered) raises, as a whole read did."""
    with open_blob(inst.blob) as fh:
        crc = 0
        while chunk := fh.read(READ_CHUNK):
            crc = crc32(chunk, crc)
        try:
            facts, reason = encoders.source_facts(fh), ""
        except encoders.NotEncodable as exc:
            facts, reason = None, exc.reason
    return crc, facts, reason


def _codec_name(codec: str) -> str:
    if codec.startswith("image/"):
        return codec.split("/", 1)[1].upper()
    try:
        return UID(codec).name if codec else ""
    except ValueError:
        return codec


def rendition_summarize(rendition: Rendition) -> Rendition:
    """Recompute a rendition's counts, bytes, ratio, label, status and reason from its files."""
    with transaction.atomic():
        # its row locked before its files are read, as ``_given_up`` locks the study's: a give-up
        # deciding meanwhile is waited for, then summed over (found by review)
        Rendition.objects.select_for_update().filter(pk=rendition.pk).values_list("pk").first()
        return _summarize(rendition)


def _summarize(rendition: Rendition) -> Rendition:
    files = rendition.files.all()
    agg = files.aggregate(ready=Count("id", filter=Q(status=Status.READY)),
                          unavailable=Count("id", filter=Q(status=Status.UNAVAILABLE)),
                          nbytes=Sum("bytes", filter=Q(status=Status.READY)),
                          original=Sum("original_bytes", filter=Q(status=Status.READY)))
    ready, unavailable = agg["ready"] or 0, agg["unavailable"] or 0
    rendition.files_ready, rendition.files_unavailable = ready, unavailable
    rendition.bytes, rendition.original_bytes = agg["nbytes"] or 0, agg["original"] or 0
    rendition.ratio = rendition.bytes / rendition.original_bytes if rendition.original_bytes else None
    rendition.status = (Status.PENDING if not ready and not unavailable else Status.UNAVAILABLE if not ready
                        else Status.PARTIAL if unavailable else Status.READY)
    codecs = sorted({c for c in files.filter(status=Status.READY).values_list("codec", flat=True) if c})
    rendition.codec = ", ".join(_codec_name(c) for c in codecs)[:100]
    rendition.lossy = files.filter(status=Status.READY, lossy=True).exists()
    # never diagnostic-grade when any source was lossy (``models.label_for``, as its files' labels;
    # only the diagnostic kinds' labels depend on it, so only they ask)
    source_lossy = rendition.kind in LOSSY_SOURCE_KIND_LABEL and RenditionFile.objects.filter(
        study_id=rendition.study_id, source_lossy=True).exists()
    rendition.label = label_for(rendition.kind, source_lossy=source_lossy)
    reasons = {}  # the first three distinct reasons, in the files' order, as they were made
    for english, parts in files.filter(status=Status.UNAVAILABLE).values_list("reason", "reason_parts"):
        if english not in reasons and len(reasons) < 3:
            reasons[english] = i18n.restore(english, parts)
    for field, value in i18n.explained(Deferred.join(reasons.values())).items():
        setattr(rendition, field, value)
    rendition.save()
    return rendition


def study_renditions_stopped(*, study_id: int) -> int:
    """The task gave up on a study (stored files still unreadable after its retries, or an
    unexpected error): its renditions still "being made" say they were not made and why, rather
    than being made for ever. Files already made are kept; a later run (``manage.py
    renditions``) makes the rest and recomputes the state. Returns the renditions marked."""
    reason = Deferred(gettext_noop("Not made: the work stopped on an error (stored files could not be read, or an "
                                   "unexpected error). An administrator can make it again."))
    return _given_up(study_id, reason)


def _given_up(study_id: int, reason: Deferred) -> int:
    """Mark "Not available", saying ``reason``, the study's renditions that would otherwise stay
    "being made" for ever once no run is left to make them: those still PENDING, and one made
    before (ready, or ready for some images) whose images added since have no file of it yet
    (``models.Progress.being_made``): its download would answer "Still being prepared, try again"
    for ever (found by review). A later run (``manage.py renditions``) makes the rest and
    recomputes the state. Returns the renditions marked.

    The study's renditions are locked while it decides and marks, as ``rendition_summarize``
    locks the one it sums: another run finishing one meanwhile (its READY written between the
    check and the marking) was marked "Not available" though made (found by review); it now
    waits, and its summary follows the marking."""
    with transaction.atomic():
        list(Rendition.objects.select_for_update().filter(study_id=study_id).order_by("pk").values_list("pk"))
        unfinished = [kind for kind in Kind if kind != Kind.ORIGINAL
                      and (progress := renditions_progress([study_id], kind).get(study_id)) is not None
                      and progress.being_made]
        return (Rendition.objects.filter(study_id=study_id).exclude(status=Status.UNAVAILABLE)
                .filter(Q(status=Status.PENDING) | Q(kind__in=unfinished))
                .update(status=Status.UNAVAILABLE, **i18n.explained(reason)))


def _lost_give_up(claim, study_id: int) -> bool:
    """The sweep gives up on renditions whose task never started: the run is deleted (unless a
    task started it meanwhile) and every rendition of the study not made says why."""
    if not claim.delete()[0]:
        return False
    study = Study.objects.filter(pk=study_id).first()
    if study is None or not study.is_ready:
        return True
    for kind in Kind:
        _rendition_row(study, kind)
    reason = Deferred(gettext_noop("Not made: the portal's work queue lost the task, even after it was sent again "
                                   "several times. An administrator can make it again."))
    _given_up(study_id, reason)
    return True


def study_renditions_lost_send(now=None) -> tuple[int, int]:
    """Send again the renditions task of studies whose run is queued and never started (the task
    queue lost it), and give up on those it lost every time (``apps.core.queue.lost_tasks_send``;
    schedule it)."""
    from apps.renditions.tasks import study_renditions_task

    queued = RenditionRun.objects.filter(started_at__isnull=True)
    return lost_tasks_send(study_renditions_task, queued, queued_at="queued_at", arg="study_id",
                           give_up=_lost_give_up, now=now)


def education_image(*, file: RenditionFile) -> bytes:
    """The labelled JPEG image of an education file (``image_blob``: small, at most EDUCATION_MAX
    px, the "not for diagnosis" band burned in), for the patient portal to show: the picture the
    patient's zip holds, never the file's own JPEG (the same pixels without the band). A file made
    before it had one gets it now (``education_images_ensure``). Raises encoders.NotEncodable for
    a file that is not an education file or whose image cannot be made or read as a JPEG."""
    if file.kind != Kind.EDUCATION or file.blob_id is None:
        raise encoders.NotEncodable(Deferred(gettext_noop("The file is not an education image.")))
    if file.image_blob_id is None:
        education_images_ensure(study=file.study)
        file.refresh_from_db(fields=["image_blob", "image_sha256", "image_crc32", "image_bytes"])
        if file.image_blob_id is None:
            raise encoders.NotEncodable(Deferred(gettext_noop("The image could not be made.")))
    with open_blob(file.image_blob) as fh:
        jpeg = fh.read()
    if not jpeg.startswith(b"\xff\xd8\xff"):  # a JPEG's start-of-image marker
        raise encoders.NotEncodable(Deferred(gettext_noop("The file is not an education image.")))
    return jpeg


def study_rendition_blob_ids(*, study: Study) -> set[int]:
    """The blobs of a study's rendition files and of their education images (for
    ``apps.imaging.services.study_delete``, which removes those no row points at once the study is
    gone). The original kind's are the instances' own blobs. One query."""
    files = RenditionFile.objects.filter(Q(blob__isnull=False) | Q(image_blob__isnull=False), study=study)
    return {pk for pair in files.values_list("blob_id", "image_blob_id") for pk in pair if pk is not None}
