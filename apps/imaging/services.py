"""Ingest: turn an upload (or a server-side path) into indexed, encrypted, de-duplicated
instances. ``ingest_job_run`` is idempotent and crash-safe: files are committed in batches,
each file's rows in the same transaction as its report line, so a retried run skips what is
done, re-uses blobs by sha256 and never creates a row twice. A batch costs a few queries
whatever its size: one blob lookup, one lock per study, one instance lookup per study, and one
insert each for blobs, instances and report lines.

Duplicates: the same SOPInstanceUID with the same bytes is a duplicate (nothing stored); the
same SOPInstanceUID with different bytes makes a new version of the study (earlier version
untouched, warning recorded), never an overwrite.

Cases: an ingest never changes the case of a study that exists, and adds to a study in a case
only when the upload was sent into that case (whose UPLOAD_STUDY the upload checked). A study
reaches a case's shares otherwise only through ``study_attach`` (second factor, confirmation
of the case's audience and of the patient). So a file of a study stored in no case, sent into
a case, goes into that study in no case; a file of a study in a case, sent into no case or
another case, goes into a new version of it in no case, which can be attached to that case
only. Either is told on the file's report line and the job ends with warnings; nothing is
refused, so no bytes are lost.

Patients: one StudyInstanceUID is one patient's. A file whose patient ID is not that of the
study stored under its StudyInstanceUID (stored before, or started by an earlier file of the same
upload: the first file decides) is refused, its report line says why (naming no patient), the
rest of the upload is ingested and the job ends with warnings (``_same_patient``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy, gettext_noop

from apps.audit.services import record
from apps.core import i18n
from apps.core.i18n import Deferred
from apps.core.queue import lost_tasks_send, send_on_commit
from apps.imaging import dicom, follow, sources
from apps.imaging.blobs import (
    BATCH_BYTES,
    BATCH_FILES,
    PARALLEL_WRITES,
    READ_SIZE,
    blob_files_delete,
    blob_files_kept_if_committed,
    blob_write,
    blobs_found,
    blobs_lock,
    blobs_record,
    blobs_unreferenced_delete,
    blobs_write_finish,
    blobs_write_start,
)
from apps.imaging.models import (
    NEVER_STARTED,
    STALLED,
    Blob,
    FileOutcome,
    IngestFileResult,
    IngestJob,
    Instance,
    JobState,
    Series,
    Study,
    StudyState,
    Upload,
)
from apps.imaging.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (files done, bytes done)


class StorageUnavailable(Exception):
    """Transient: the storage backend could not be reached; the task retries."""


class JobTakenOver(Exception):
    """Another run took the job over (the sweep sent its task again after it stalled, or
    ``manage.py ingest --resume``): this run stops at its next commit, which rolls back."""


#: a run's sign of life between its batch commits: it touches its job's ``heartbeat_at`` (one UPDATE)
#: at least this often, in seconds, from its entries loop (``_Run.alive``), so that a batch that takes
#: long (a huge file on slow storage) or a ``--resume`` skipping a big tree's done entries is not taken
#: for a run that stopped (``ingest_jobs_lost_send``, ``LIGHTBOX_INGEST_STALLED_MINUTES``)
HEARTBEAT_SECONDS = 60


class UploadDiscarded(Exception):
    """The job failed and its upload's staged file was discarded since (its retention,
    ``LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS``): nothing is left to resume."""


def _hash(fh: IO[bytes]) -> tuple[str, int]:
    fh.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := fh.read(READ_SIZE):
        digest.update(chunk)
        size += len(chunk)
    fh.seek(0)
    return digest.hexdigest(), size


# --- creating jobs -----------------------------------------------------------------------------

def ingest_job_create(*, organization, upload: Upload | None = None, source_path: str = "", case=None,
                      created_by=None, enqueue: bool = True) -> IngestJob:
    """Create an ingest job and queue its task once the row is committed (args are ids only; a
    broker that cannot take it then leaves the job queued and sent again: ``apps.core.queue``)."""
    job = IngestJob.objects.create(organization=organization, upload=upload, source_path=source_path,
                                   case=case if case is not None else getattr(upload, "case", None),
                                   created_by=created_by)
    if enqueue:
        from apps.imaging.tasks import ingest_job_run_task

        send_on_commit(ingest_job_run_task, job.pk)
    return job


# --- running jobs ------------------------------------------------------------------------------

def _entries(job: IngestJob):
    if job.upload_id is not None:
        from apps.imaging import staging
        from apps.imaging.uploads import upload_open

        try:
            staging.staging_dir()  # not there (its volume not mounted): retried, and its file is read once it is back
        except staging.StagingUnavailable as exc:
            raise StorageUnavailable(str(exc)) from exc
        upload = job.upload
        return sources.stream_entries(lambda: _ctx(upload_open(upload)), upload.filename or "(upload)")
    return sources.path_entries(Path(job.source_path))


@contextmanager
def _ctx(fh):
    try:
        yield fh
    finally:
        fh.close()


def _study_defaults(header: dicom.DicomHeader) -> dict[str, Any]:
    return {
        "accession_number": header.accession_number,
        "study_date": header.study_date,
        "study_description": header.study_description,
        "body_part_examined": header.body_part_examined,
        "patient_id": header.patient_id,
        "issuer_of_patient_id": header.issuer_of_patient_id,
        "patient_name": header.patient_name,
        "patient_birth_date": header.patient_birth_date,
    }


def _series_for(study: Study, header: dicom.DicomHeader) -> Series:
    series, _ = Series.objects.get_or_create(
        study=study, series_instance_uid=header.series_instance_uid,
        defaults={"organization_id": study.organization_id, "series_number": header.series_number,
                  "modality": header.modality, "series_description": header.series_description,
                  "body_part_examined": header.body_part_examined})
    return series


def _new_version(job: IngestJob, latest: Study, changed_uid: str | None, *, case_id: int | None) -> Study:
    """Copy ``latest`` into version + 1 (rows only: the instances point at the same blobs),
    leaving out the changed instance (``changed_uid``, None: none), which the caller adds.
    ``case_id``: the new version's case, ``latest``'s own or None (``_may_add_to``): a copy of a
    study never goes into a case the study is not in."""
    if case_id not in (None, latest.case_id):
        raise ValueError("a new version goes into its study's case or into none")
    fields = {f: getattr(latest, f) for f in ("organization_id", "study_instance_uid",
                                              "accession_number", "study_date", "study_description",
                                              "modalities", "body_part_examined", "patient_id",
                                              "issuer_of_patient_id", "patient_name", "patient_birth_date")}
    # a file's own warnings (dicom.WARNINGS: its image data short, say) leave with it when it is replaced
    warnings = [w for w in latest.warnings if not (changed_uid and w.get("sop_instance_uid") == changed_uid
                                                   and w.get("kind") in dicom.WARNINGS)]
    study = Study.objects.create(**fields, case_id=case_id, version=latest.version + 1, previous=latest,
                                 created_by_job=job, state=StudyState.PROCESSING, warnings=warnings)
    series_map: dict[int, Series] = {}
    for series in latest.series.all():
        series_map[series.pk] = Series.objects.create(
            organization_id=series.organization_id, study=study, series_instance_uid=series.series_instance_uid,
            series_number=series.series_number, modality=series.modality,
            series_description=series.series_description, body_part_examined=series.body_part_examined)
    kept = latest.instances.all() if changed_uid is None else latest.instances.exclude(sop_instance_uid=changed_uid)
    Instance.objects.bulk_create([
        Instance(organization_id=i.organization_id, study=study, series=series_map[i.series_id], blob_id=i.blob_id,
                 sop_instance_uid=i.sop_instance_uid, sop_class_uid=i.sop_class_uid,
                 transfer_syntax_uid=i.transfer_syntax_uid, instance_number=i.instance_number, frames=i.frames,
                 rows=i.rows, columns=i.columns, size=i.size, sha256=i.sha256,
                 pixels_may_identify=i.pixels_may_identify)
        for i in kept.iterator()
    ], batch_size=500)
    return study


def _finish_study(study: Study, *, failed: bool = False) -> None:
    """The study's counts from what it holds, and its state: ready (with warnings if it has any),
    or ``failed`` (a study its job created, the job failed)."""
    agg = study.instances.aggregate(n=Count("id"), total=Sum("size"))
    modalities = sorted({m for m in study.series.values_list("modality", flat=True) if m})
    for series in study.series.annotate(n=Count("instances")):
        if series.num_instances != series.n:
            Series.objects.filter(pk=series.pk).update(num_instances=series.n)
    study.num_instances = agg["n"] or 0
    study.total_bytes = agg["total"] or 0
    study.num_series = study.series.count()
    study.modalities = ",".join(modalities)[:100]
    # the warnings as stored now: another job's batch may have added some since this job read the
    # row (it is not locked here), which a save of the whole row would have put back as they were
    study.warnings = Study.objects.filter(pk=study.pk).values_list("warnings", flat=True).get()
    study.state = StudyState.READY_WITH_WARNINGS if study.warnings else StudyState.READY
    if failed:
        study.state = StudyState.FAILED
    study.save(update_fields=["num_instances", "total_bytes", "num_series", "modalities", "state"])


#: a batch (blobs.BATCH_FILES, BATCH_BYTES) is committed at once; the retry redoes the one a
#: crash interrupted. A file larger than sources.MEMORY_MAX is stored in a batch of its own
#: entries the follower prepared hold no bytes: up to this many of them are committed at once
BATCH_PREPARED = 1000


REPORT_PATH_MAX = IngestFileResult._meta.get_field("path").max_length


def _report_path(path: str) -> str:
    """The path as a report line keeps it: a zip may name an entry with up to 65,535 bytes, the
    column holds 1,000 characters. A longer path keeps its start and its end around a hash of the
    whole, so that two long paths stay two lines and a retried run finds the line it wrote."""
    if len(path) <= REPORT_PATH_MAX:
        return path
    mark = f"…[{hashlib.sha256(path.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}]…"
    keep = (REPORT_PATH_MAX - len(mark)) // 2
    return path[:keep] + mark + path[-keep:]


@dataclass
class _Item:
    """One file of a batch: parsed and hashed before the batch's transaction, indexed in it."""

    path: str
    size: int | None
    outcome: str = ""
    reason: str = ""
    header: dicom.DicomHeader | None = None
    sha256: str = ""
    source: bytes | IO[bytes] | None = None  # the plaintext (bytes, or an open file for a large one)
    blob: Blob | None = None  # already stored (an entry the follower prepared)
    study: Study | None = None
    instance: Instance | None = None

    def skip(self, reason: str) -> _Item:
        self.outcome, self.reason, self.source = FileOutcome.SKIPPED, reason, None
        return self

    def result(self, job: IngestJob) -> IngestFileResult:
        return IngestFileResult(job=job, path=self.path, outcome=self.outcome, **i18n.explained(self.reason),
                                size=self.size, study=self.study, instance=self.instance)


def _prepare(entry: sources.Entry, fh: IO[bytes]) -> _Item:
    """Parse and hash one file (raises DicomError). Files up to MEMORY_MAX are read into memory
    once and parsed and hashed from there; a larger one stays a file (read twice)."""
    item = _Item(path=entry.path, size=entry.size)
    size = fh.seek(0, io.SEEK_END)
    fh.seek(0)
    if size <= sources.MEMORY_MAX:
        data = fh.read()
        item.header = dicom.parse(io.BytesIO(data))
        item.sha256, item.size, item.source = hashlib.sha256(data).hexdigest(), len(data), data
    else:
        item.header = dicom.parse(fh)
        (item.sha256, item.size), item.source = _hash(fh), fh
    if item.header.is_dicomdir:
        return item.skip(Deferred(gettext_noop("DICOMDIR index: its files are ingested")))
    return item


class _Run:
    """One run of a job: caches valid for the run (series, linked studies) and for the batch in
    its transaction (the locked latest version of each study, the instances it holds)."""

    def __init__(self, job: IngestJob):
        self.job = job
        self.linked: set[int] = set()
        self.series: dict[tuple[int, str], Series] = {}
        self.latest: dict[str, Study] = {}                            # study UID -> latest version
        self.held: dict[int, dict[str, Instance]] = {}                # study pk -> SOP UID -> instance
        self.pending: list[Instance] = []                             # to insert
        self.dirty: dict[int, Study] = {}                             # to save
        #: blob files are encrypted and written here, several at a time (writing and fsync release
        #: the GIL), while the run reads on
        self.writer = ThreadPoolExecutor(max_workers=PARALLEL_WRITES, thread_name_prefix="blob-writer")
        self.claimed: set[str] = set()                                # sha256s this run writes
        self.written: dict[str, Blob] = {}                            # ... and has recorded
        self.beat = time.monotonic()                                  # when it last touched heartbeat_at

    def alive(self) -> None:
        """Between batch commits (a time check per entry): at most once every ``HEARTBEAT_SECONDS``,
        the job's ``heartbeat_at`` is touched where this run still holds it (its lease, ``task_id``);
        JobTakenOver when it no longer does (the sweep, or ``--resume``, took it over meanwhile).
        Outside any transaction: it holds the job's row no longer than the UPDATE."""
        if time.monotonic() - self.beat < HEARTBEAT_SECONDS:
            return
        _job_hold(self.job)
        self.beat = time.monotonic()

    def latest_study(self, header: dicom.DicomHeader) -> Study:
        """The latest version of the file's study, locked (one writer per study UID at a time:
        the lock serialises version decisions between jobs), created as version 1 if new."""
        uid = header.study_instance_uid
        if uid not in self.latest:
            self.latest[uid] = self._latest_locked(header)
        return self.latest[uid]

    def _latest_locked(self, header: dicom.DicomHeader) -> Study:
        """Read the latest version, lock it, and take it only if it is the latest still: under
        READ COMMITTED a lock that waited gets the row as committed then, or nothing if it was
        deleted meanwhile, and each query sees what was committed before it began. So:

        - a version the job holding the lock made while this one waited is seen by the check
          after the lock, and read and locked in turn (else this job would make a second version
          after the same one: an IntegrityError, the job failed);
        - a version deleted between its read and its lock is not there to lock: read again (an
          older version is the latest then, or none is left and version 1 is made);
        - version 1 made by another job while this one made it too (the insert waits for the
          other's commit, then fails on the unique constraint) is locked like any stored version,
          never added to unlocked (the lock is what ``study_delete``, ``study_attach`` and other
          jobs wait for)."""
        job = self.job
        versions = Study.objects.for_org(job.organization_id).filter(study_instance_uid=header.study_instance_uid)
        while True:
            latest = versions.order_by("-version").values_list("pk", flat=True).first()
            if latest is None:
                try:
                    with transaction.atomic():  # a savepoint: the batch goes on after a conflict
                        return Study.objects.create(
                            organization_id=job.organization_id, study_instance_uid=header.study_instance_uid,
                            version=1, **_study_defaults(header), case=job.case, created_by_job=job,
                            state=StudyState.PROCESSING)  # inserted: no other job locks it before the commit
                except IntegrityError:
                    if not versions.exists():
                        raise  # not the other job's version 1: some other constraint
                    continue
            study = versions.select_for_update().filter(pk=latest).first()
            if study is not None and not versions.filter(version__gt=study.version).exists():
                return study

    def instances(self, study: Study, sop_uids: list[str]) -> dict[str, Instance]:
        """The study's instances among ``sop_uids`` (one query per study and batch), plus those
        this batch added."""
        if study.pk not in self.held:
            self.flush_instances()
            self.held[study.pk] = {i.sop_instance_uid: i for i in
                                   Instance.objects.filter(study=study, sop_instance_uid__in=sop_uids)}
        return self.held[study.pk]

    def series_for(self, study: Study, header: dicom.DicomHeader) -> Series:
        key = (study.pk, header.series_instance_uid)
        if key not in self.series:
            self.series[key] = _series_for(study, header)
        return self.series[key]

    def link(self, study: Study) -> None:
        if study.pk not in self.linked:
            self.job.studies.add(study)
            self.linked.add(study.pk)

    def flush_instances(self) -> None:
        if self.pending:
            Instance.objects.bulk_create(self.pending)
            self.pending = []

    def end_batch(self) -> None:
        """Before the commit: write what is pending. After it the study locks are released, so
        what others may change is read again in the next batch."""
        self.flush_instances()
        for study in self.dirty.values():
            study.save()
        self.dirty.clear()
        self.latest.clear()
        self.held.clear()


#: told on the report line of a file placed otherwise than its upload asked (``_may_add_to``)
IN_NO_CASE = gettext_noop("This study is stored in no case: the file went into it there, not into the case "
                          "chosen for the upload. To put the study into a case, use “Attach to a case” on its page.")
VERSION_IN_NO_CASE = gettext_noop("Version %(kept)s of this study is in a case, which an upload adds to only when "
                                  "it is sent into that case: the file went into version %(version)s, in no case, "
                                  "which can be attached to that case from the study's page.")
DUPLICATE_ELSEWHERE = gettext_noop("The study it belongs to is not in the case chosen for the upload, and an upload "
                                   "does not move a study.")
#: told on the report line of a file refused because its patient is not its study's (``_same_patient``);
#: it names no patient (no PHI on report lines, in logs or in the audit)
PATIENT_DIFFERS = gettext_noop("refused: the patient ID in this file is not that of the study already stored under "
                               "the same Study Instance UID (by an earlier upload or an earlier file of this one); a "
                               "study holds one patient's images only, so nothing of this file was stored")


def patient_key(patient_id: str | None) -> str:
    """A patient ID as the rules that compare them read it: blanks around it ignored, as the
    index keeps it (``dicom._text``); missing is empty."""
    return (patient_id or "").strip()


def _same_patient(study: Study, header: dicom.DicomHeader) -> bool:
    """Whether a file is of its study's patient: one StudyInstanceUID belongs to one patient, and
    an ingest never puts two patients' images in one study (any version of it: a version copies
    its patient from the one before). The study's patient is the one its first file named (the
    first stored, or the first of the batch that started it), as indexed: its patient ID, the one
    patient identifier the index keeps. An empty patient ID is a value like any other: a file with
    none is not shown to be the patient of a study with one, nor the reverse, so either is refused;
    a study whose files all have none (as some de-identified ones do) takes more with none.

    A patient ID is unique only within the authority that issued it (Issuer of Patient ID): the
    same ID from two issuers is two patients, so a file naming an issuer other than the study's
    is refused too. A file or study that names no issuer is not refused for that alone (many
    modalities leave it empty); the study keeps the first issuer a file of it named."""
    if patient_key(study.patient_id) != patient_key(header.patient_id):
        return False
    ours, theirs = patient_key(study.issuer_of_patient_id), patient_key(header.issuer_of_patient_id)
    return not (ours and theirs and ours != theirs)


def _may_add_to(job: IngestJob, latest: Study) -> bool:
    """Whether a file of ``latest``'s study (its latest version, locked) may go into ``latest``
    itself (or a new version in its case): when ``latest`` is in no case, or in the case the
    upload was sent into. An ingest never changes a study's case either: a study in no case stays
    there, whatever case the upload names (it must not bring a study someone else stored,
    possibly another patient's, to that case's shares without the attach's second factor and
    confirmation). Otherwise (a study in a case, an upload into no case or another case) the
    file goes into a new version in no case, which ``study_attach`` puts into that case only."""
    return latest.case_id is None or latest.case_id == job.case_id


def _index(run: _Run, item: _Item, blob: Blob, sop_uids: list[str]) -> None:
    """Decide the file's outcome (refused: another patient's, ``_same_patient``; duplicate, new
    instance, new version) and add its instance, into a study in a case only as ``_may_add_to``
    allows."""
    job, header = run.job, item.header
    latest = run.latest_study(header)
    if not _same_patient(latest, header):
        # refused before anything is decided (a duplicate, a new version): its blob, if this batch
        # wrote it, is deleted with the batch's commit (``_store_finish``). Logged without the
        # file's path, which may name the patient
        logger.warning("ingest job %s: a file refused, its patient ID is not that of study %s",
                       job.pk, latest.public_id)
        item.skip(Deferred(PATIENT_DIFFERS))
        return
    held = run.instances(latest, sop_uids)
    existing = held.get(header.sop_instance_uid)
    if existing is not None and existing.sha256 == item.sha256:
        item.outcome = FileOutcome.DUPLICATE
        reasons = [Deferred(gettext_noop("same SOPInstanceUID and same bytes as a stored instance"))]
        if job.case_id is not None and latest.case_id != job.case_id:
            reasons.append(Deferred(DUPLICATE_ELSEWHERE))
        item.reason = Deferred.join(reasons)
        item.study, item.instance = latest, existing
        run.link(latest)
        return
    study = latest
    item.outcome = FileOutcome.INGESTED
    reasons = []
    may_add = _may_add_to(job, latest)
    if existing is not None or not may_add:
        run.flush_instances()  # the new version copies the latest one's instances, this batch's too
        study = _new_version(job, latest, header.sop_instance_uid if existing is not None else None,
                             case_id=latest.case_id if may_add else None)
        run.latest[header.study_instance_uid] = study
        held = run.instances(study, sop_uids)
        run.dirty[study.pk] = study
        if existing is not None:
            item.outcome = FileOutcome.NEW_VERSION
            reasons.append(Deferred(gettext_noop("changed instance with an existing SOPInstanceUID: stored as "
                                                 "version %(version)s; version %(kept)s kept"),
                                    version=study.version, kept=latest.version))
            study.warnings = [*study.warnings, {"kind": "changed_instance",
                                                "sop_instance_uid": header.sop_instance_uid,
                                                "previous_version": latest.version}]
    if not may_add:
        reasons.append(Deferred(VERSION_IN_NO_CASE, kept=latest.version, version=study.version))
    elif study.case_id is None and job.case_id is not None:
        reasons.append(Deferred(IN_NO_CASE))
    if header.warnings:  # kept (nothing lost), flagged: the study is ready with warnings (dicom.WARNINGS)
        reasons.append(dicom.warning_reason(header.warnings))
        study.warnings = [*study.warnings, *({"kind": kind, "sop_instance_uid": header.sop_instance_uid}
                                             for kind in header.warnings)]
        run.dirty[study.pk] = study
    if header.issuer_of_patient_id and not study.issuer_of_patient_id:
        study.issuer_of_patient_id = header.issuer_of_patient_id  # the first issuer named is the study's
        run.dirty[study.pk] = study
    if reasons:
        item.reason = Deferred.join(reasons)
    instance = Instance(
        organization_id=job.organization_id, study=study, series=run.series_for(study, header), blob=blob,
        sop_instance_uid=header.sop_instance_uid, sop_class_uid=header.sop_class_uid,
        transfer_syntax_uid=header.transfer_syntax_uid, instance_number=header.instance_number,
        frames=header.frames, rows=header.rows, columns=header.columns, size=item.size, sha256=item.sha256,
        pixels_may_identify=header.pixels_may_identify)
    run.pending.append(instance)
    held[header.sop_instance_uid] = instance
    if study.state != StudyState.PROCESSING:
        study.state = StudyState.PROCESSING  # more images arriving: not ready until the job ends
        run.dirty[study.pk] = study
    item.study, item.instance = study, instance
    run.link(study)


@dataclass
class _Stored:
    """A batch whose new blobs are being written (on the run's writer threads)."""

    items: list[_Item]
    found: dict[str, Blob]                 # already stored (looked up when the batch started)
    writes: list[Future[Blob]]             # written by this batch


def _store_start(run: _Run, items: list[_Item]) -> _Stored:
    """Look the batch's blobs up and start writing the missing ones in the background, while
    the next batch is read and parsed. Bytes an earlier batch of this run writes are not
    written again (that batch is committed first)."""
    files = [i for i in items if not i.outcome]
    found = blobs_found({i.sha256 for i in files if i.blob is None} - run.claimed)
    new: dict[str, bytes | IO[bytes]] = {}
    for item in files:
        if item.blob is None and item.sha256 not in found and item.sha256 not in run.claimed:
            run.claimed.add(item.sha256)
            new[item.sha256] = item.source
    return _Stored(items=items, found=found, writes=blobs_write_start(new, run.writer))


def _store_finish(run: _Run, stored: _Stored) -> None:
    """Commit a batch in one transaction: the blob rows, the index rows and the report lines
    together or not at all (the batch's new blob files go if it does not commit)."""
    items = stored.items
    if not items:
        return
    try:
        written = blobs_write_finish(stored.writes)
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(str(exc)) from exc
    files = [i for i in items if not i.outcome]
    sop_uids: dict[str, list[str]] = {}
    for item in files:
        sop_uids.setdefault(item.header.study_instance_uid, []).append(item.header.sop_instance_uid)
    found = dict(stored.found)
    with blob_files_kept_if_committed(written), transaction.atomic():
        _job_hold(run.job)
        for item in files:  # lock (or create) the studies first: concurrent jobs of a study wait here
            run.latest_study(item.header)
        for sha in blobs_lock(found):  # deleted since the lookup (another study's deletion): store again
            del found[sha]
            source = next(i.source for i in files if i.sha256 == sha and i.blob is None)
            if not isinstance(source, bytes):
                source.seek(0)
            try:
                written.append(blob_write(source, sha))
            except STORAGE_ERRORS as exc:
                raise StorageUnavailable(str(exc)) from exc
        recorded = {b.sha256: b for b in blobs_record(written)}
        run.written.update(recorded)
        for item in files:
            blob = item.blob or found.get(item.sha256) or run.written[item.sha256]
            _index(run, item, blob, sop_uids[item.header.study_instance_uid])
        run.end_batch()
        # the bytes of a refused file (another patient's) that this batch wrote are not kept
        refused = {i.sha256 for i in files if i.outcome == FileOutcome.SKIPPED} & recorded.keys()
        orphans = blobs_unreferenced_delete(recorded[sha].pk for sha in refused) if refused else []
        IngestFileResult.objects.bulk_create([i.result(run.job) for i in items])
        if prepared := sum(1 for i in files if i.blob is not None):
            IngestJob.objects.filter(pk=run.job.pk).update(files_prepared=F("files_prepared") + prepared)
    for blob in orphans:  # a later batch with the same bytes writes them again
        run.written.pop(blob.sha256, None)
        run.claimed.discard(blob.sha256)
    blob_files_delete(orphans)
    for item in items:
        item.source = None


def ingest_job_run(*, job_id: int, progress: Progress | None = None, task_id: str | None = None,
                   lease: str | None = None) -> IngestJob:
    """Run (or resume) an ingest job. Safe to call any number of times.

    ``task_id``: the id of the task message that runs it (the broker keeps it when it delivers a
    message again). The task runs a job that is queued, that this message started (a worker killed
    mid-job: resumed), or that the lost-task sweep gave up on (its message came late); a job
    running under another message (a duplicate the sweep sent while the first still waited in the
    queue) or failed otherwise is left alone, and so is a job done. Without it (``manage.py ingest
    --resume``) any job not done is run, under ``lease`` (given by ``manage.py ingest``, which fails
    the job under it if the run raises: ``ingest_job_fail(task_id=lease)``) or a new one. A job whose
    staged file was discarded (it failed ``LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS`` ago) is never run:
    UploadDiscarded without ``task_id``."""
    job = IngestJob.objects.select_related("organization", "upload", "case").get(pk=job_id)
    if job.state in (JobState.DONE, JobState.DONE_WITH_WARNINGS):
        return job
    claim = IngestJob.objects.filter(pk=job.pk, upload_discarded_at__isnull=True)  # the discard claims it too
    if task_id is not None:
        claim = claim.filter(Q(state=JobState.QUEUED) | Q(state=JobState.FAILED, error=NEVER_STARTED)
                             | Q(state=JobState.RUNNING, task_id__in=[task_id, ""]))
    lease = task_id or lease or f"resume-{uuid.uuid4().hex}"  # --resume takes the job over from any run
    now = timezone.now()
    if not claim.update(state=JobState.RUNNING, attempts=F("attempts") + 1,
                        started_at=job.started_at or now, task_id=lease, heartbeat_at=now):
        job.refresh_from_db(fields=["state", "upload_discarded_at"])
        if job.upload_discarded_at is not None and task_id is None:
            raise UploadDiscarded(
                f"ingest job {job.public_id}: its uploaded file was discarded on {job.upload_discarded_at:%Y-%m-%d}, "
                f"{settings.LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS} days or more after the job failed "
                "(LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS); there is nothing left to resume: the file must be uploaded again")
        logger.info("ingest job %s: %s, left alone by task %s", job.pk, job.state, task_id)
        return job
    job.refresh_from_db(fields=["state", "attempts", "started_at", "task_id", "resent_at", "resends", "heartbeat_at"])
    done = set(job.files.values_list("path", flat=True))
    run = _Run(job)
    try:
        try:
            _run_entries(run, done, progress)
        finally:
            run.writer.shutdown(wait=True)  # no blob write outlives the run
        return _job_finish(job)
    except JobTakenOver:
        logger.warning("ingest job %s: taken over by another run; this run (task %s) stops", job.pk, task_id)
        job.refresh_from_db()
        return job


def _job_hold(job: IngestJob) -> None:
    """In a batch's or the finish's transaction, first: the run still holds the job (its lease,
    ``task_id``), and this is its sign of life (``heartbeat_at``). The job's row stays locked
    until the commit, so a sweep or ``--resume`` taking the job over waits for it, and then
    sees a run alive."""
    if not IngestJob.objects.filter(pk=job.pk, state=JobState.RUNNING, task_id=job.task_id).update(
            heartbeat_at=timezone.now()):
        raise JobTakenOver(job.pk)


def _run_entries(run: _Run, done: set[str], progress: Progress | None) -> None:
    """Read, parse and hash batch N+1 while batch N's blobs are written; commit in order."""
    files = nbytes = held = reading = 0  # reading: the batch's entries read here (not prepared)
    seen: set[str] = set()
    # entries the follower already read while the upload arrived (used only where the central
    # directory names the very same entry, after the same checks)
    prepared = follow.prepared_for_job(run.job.upload) if run.job.upload_id is not None else {}
    batch: list[_Item] = []
    pending: _Stored | None = None

    def flush() -> None:
        nonlocal batch, held, pending, reading
        previous, pending = pending, _store_start(run, batch)
        batch, held, reading = [], 0, 0
        if previous is not None:
            _store_finish(run, previous)

    def finish_pending() -> None:
        nonlocal pending
        last, pending = pending, None
        _store_finish(run, last)

    try:
        for entry in _entries(run.job):
            run.alive()  # before the done entries' ``continue``: a --resume skipping many is alive too
            files += 1
            nbytes += entry.size or 0
            entry.path = _report_path(entry.path)
            if entry.path in seen:  # a zip may hold the same name twice: report both
                entry.path = _report_path(f"{entry.path} ({files})")
            seen.add(entry.path)
            if entry.path in done:
                continue
            item: _Item | None = _Item(path=entry.path, size=entry.size)
            if entry.skip_reason or entry.open is None:
                item.skip(entry.skip_reason)
            elif (early := prepared.get(entry.zip_key)) is not None:
                item.size, item.sha256, item.blob = early.file_size, early.sha256, early.blob
                item.header = follow.header_from_json(early.header)
            else:
                try:
                    with entry.open() as fh:
                        item = _prepare(entry, fh)
                        if item.source is not None and not isinstance(item.source, bytes):
                            # too large to hold: stored now, while its file is open, in a batch of its own
                            flush()
                            finish_pending()
                            _store_finish(run, _store_start(run, [item]))
                            item = None
                except dicom.DicomError as exc:
                    item.skip(exc.reason)
                except (zipfile.BadZipFile, zlib.error, EOFError):
                    item.skip(Deferred(gettext_noop("damaged zip entry (checksum or compressed data)")))
            if item is not None:
                batch.append(item)
                if item.source is not None:
                    held += item.size or 0
                if item.blob is None:
                    reading += 1
            if reading >= BATCH_FILES or held >= BATCH_BYTES or len(batch) >= BATCH_PREPARED:
                flush()
            if progress is not None:
                progress(files, nbytes)
        flush()
        finish_pending()
    except BaseException:
        if pending is not None:  # started, never committed: its blob files go (the run stops here)
            _store_abandon(pending)
        raise
    if progress is not None:
        progress(files, nbytes)


def _store_abandon(stored: _Stored) -> None:
    """A batch started and never committed (the run stopped on an error, or lost its job): its
    writes are waited for and the files they made deleted, since no row holds their keys."""
    try:
        written = blobs_write_finish(stored.writes)
    except Exception:  # noqa: BLE001 - a write failed: blobs_write_finish deleted the others' files
        return
    blob_files_delete(written)


def _lines_to_read(job: IngestJob) -> bool:
    """Whether some file of the job was ingested with something its uploader should read: not
    where its upload asked (``_may_add_to``: a study of the job in no case or another case than the
    one the upload was sent into, or a new version in no case made for a file of a study in a
    case), or kept with a warning (``dicom.WARNINGS``: image data shorter than its header says).
    Their report lines say so, and the job ends with warnings, so that the uploader reads them."""
    if job.case_id is not None and job.studies.exclude(case_id=job.case_id).exists():
        return True
    # an ingested file's line says nothing unless it was placed otherwise or kept with a warning
    return job.files.filter(outcome=FileOutcome.INGESTED).exclude(reason="").exists()


def _job_finish(job: IngestJob) -> IngestJob:
    """The job's counts, its studies ready, its records and renditions, in one transaction
    that only the run holding the job commits (``_job_hold``); then its staged file goes."""
    with transaction.atomic():
        _job_hold(job)
        counts = dict(job.files.values_list("outcome").annotate(n=Count("id")))
        stored = job.files.filter(outcome__in=[FileOutcome.INGESTED, FileOutcome.NEW_VERSION]).aggregate(s=Sum("size"))
        # a run that finishes a job which had failed part way (``--resume``): its studies' warning
        # that it failed goes (read again locked, as a batch locks the row, so no warning added
        # meanwhile is lost; told in Python: SQLite has no JSON containment)
        failed = _upload_failed_warning(job)
        for study in job.studies.all():
            if failed in study.warnings:
                row = Study.objects.filter(pk=study.pk)
                warnings = row.select_for_update().values_list("warnings", flat=True).get()
                row.update(warnings=[w for w in warnings if w != failed])
            _finish_study(study)
        job.files_total = sum(counts.values())
        job.files_ingested = counts.get(FileOutcome.INGESTED, 0) + counts.get(FileOutcome.NEW_VERSION, 0)
        job.files_duplicate = counts.get(FileOutcome.DUPLICATE, 0)
        job.files_skipped = counts.get(FileOutcome.SKIPPED, 0)
        job.bytes_stored = stored["s"] or 0
        warn = (job.files_skipped or counts.get(FileOutcome.NEW_VERSION, 0)
                or _lines_to_read(job))
        job.state = JobState.DONE_WITH_WARNINGS if warn else JobState.DONE
        job.finished_at = timezone.now()
        job.refresh_from_db(fields=["files_prepared"])  # counted by the batches (an F() update)
        job.save()
        details = {"job": str(job.public_id), "files": job.files_total, "ingested": job.files_ingested,
                   "duplicates": job.files_duplicate, "skipped": job.files_skipped, "bytes": job.bytes_stored}
        record(action="imaging.ingest", actor=job.created_by, organization_id=job.organization_id, target=job,
               case=job.case, details=details)
        for study in job.studies.all():
            record(action="imaging.study_ingested", actor=job.created_by, organization_id=job.organization_id,
                   target=study, details={"version": study.version, "instances": study.num_instances,
                                          "state": study.state})
        from apps.renditions.services import renditions_queue  # renditions follow ingest, after commit

        for study in job.studies.all():
            if study.is_ready:
                renditions_queue(study_id=study.pk)
    if job.upload_id is not None:
        from apps.imaging.uploads import upload_discard_staging

        try:
            upload_discard_staging(job.upload)
        except Exception as exc:  # noqa: BLE001 - the job is done and committed: nothing here undoes that
            # its type only (a message could quote a path); the staged file is left over, for the
            # sweep (uploads.staging_leftovers_delete)
            logger.warning("ingest job %s: done, its upload's staged file not deleted (%s); left for the sweep",
                           job.pk, type(exc).__name__)
    return job


def ingest_job_fail(*, job_id: int, error: str, task_id: str | None = None) -> None:
    """The task (message ``task_id``) gave up: the job and the studies it created are marked
    failed (no partial study is ever shown as ready). A job running under another message (it
    was taken over) is left alone, and so is a job done (what failed came after its commit)."""
    mine = IngestJob.objects.filter(pk=job_id).exclude(state__in=[JobState.DONE, JobState.DONE_WITH_WARNINGS])
    if task_id is not None:
        mine = mine.exclude(Q(state=JobState.RUNNING) & ~Q(task_id=task_id))
    if not _job_fail(mine, job_id, error=error[:300]):
        logger.warning("ingest job %s: task %s gave up (%s); the job is done or another run holds it, left alone",
                       job_id, task_id, error[:80])


#: a study's warning (``Study.warnings``): an ingest job that added images to it failed part way
#: (``_job_failed``); ``job`` is its public id. A run that later finishes the job removes it
UPLOAD_FAILED = "upload_failed"


def _upload_failed_warning(job: IngestJob) -> dict:
    """The warning a failed job leaves on a study it added to, and its finish (``--resume``)
    removes: one shape for both, so the removal finds what was added."""
    return {"kind": UPLOAD_FAILED, "job": str(job.public_id)}


def _job_fail(claim, job_id: int, *, error: str) -> bool:
    """Fail the job through ``claim`` (its row, as the caller may still take it: an UPDATE that
    finds nothing means it may not) and its studies (``_job_failed``), in one transaction: an error
    on the way (the database, in ``_studies_release``) rolls the job's state back with the rest, so
    the job is left running or queued, where the task's retry or the lost-job sweep takes it again,
    never failed with a study left processing that nothing would finish. The job's row is locked
    first, as a batch locks it before its studies (``_job_hold``). What the follower prepared for
    it is dropped after the commit (its blob files cannot come back with a rollback)."""
    with transaction.atomic():
        if not claim.update(state=JobState.FAILED, error=error, finished_at=timezone.now()):
            return False
        job = IngestJob.objects.get(pk=job_id)
        _job_failed(job)
    if job.upload_id is not None:
        follow.prepared_discard(job.upload)
    return True


def _job_failed(job: IngestJob) -> None:
    """Mark the studies the job created failed, unless ready (no partial study is shown as ready),
    finish those it added to without creating them (``_studies_release``) and record the failure.
    In ``_job_fail``'s transaction."""
    for study in Study.objects.filter(created_by_job=job).exclude(
            state__in=[StudyState.READY, StudyState.READY_WITH_WARNINGS, StudyState.FAILED]):
        _finish_study(study, failed=True)  # its counts say what it holds, as a page lists them
    _studies_release(job)
    record(action="imaging.ingest", actor=job.created_by, organization_id=job.organization_id, target=job,
           outcome="failed", details={"job": str(job.public_id)})


def _studies_release(job: IngestJob) -> None:
    """The studies a failed job added to and did not create (each stored before it: its batches set
    them processing, ``_index``) are finished from what they hold, with an ``UPLOAD_FAILED``
    warning, never left processing: they were shown before the job, and hold the images it stored
    before it stopped, which a retry or a new upload finds as duplicates. One another job is still
    adding to (queued or running) is left to that job, which finishes it. Each is locked first (the
    lock a batch takes before it adds to a study), so a batch adding to it meanwhile is seen."""
    for pk in job.studies.filter(state=StudyState.PROCESSING).exclude(created_by_job=job).values_list("pk", flat=True):
        with transaction.atomic():
            study = Study.objects.select_for_update().filter(pk=pk, state=StudyState.PROCESSING).first()
            if study is None or IngestJob.objects.adding_to([study]).exclude(pk=job.pk).exists():
                continue
            warning = _upload_failed_warning(job)
            if warning not in study.warnings:
                Study.objects.filter(pk=pk).update(warnings=[*study.warnings, warning])
            _finish_study(study)
        logger.warning("ingest job %s failed part way: study %s finished with what it holds", job.pk,
                       study.public_id)


#: ``IngestJob.error`` of a job of ``manage.py ingest`` whose process stopped while it ran (killed,
#: the machine restarted): the sweep's give-up (its failure reads as unexpected, with its reference)
COMMAND_STOPPED = "CommandStopped"


def ingest_jobs_lost_send(now=None) -> tuple[int, int]:
    """Send again the ingest task of upload jobs the task queue lost, and mark failed those it
    lost every time (``apps.core.queue.lost_tasks_send``; schedule it). Two kinds of lost:

    - queued and never started (``LIGHTBOX_TASK_NEVER_STARTED_MINUTES``);
    - running, with no sign of life for ``LIGHTBOX_INGEST_STALLED_MINUTES`` (a run touches its job's
      ``heartbeat_at`` at each batch commit and at least every ``HEARTBEAT_SECONDS``): its worker died
      and its message is gone too (a worker killed is not enough: the broker delivers its message
      again, ``acks_late``). The sweep's claim releases the job (``task_id`` emptied), so the
      message it sends takes it over and resumes it; a run still alive after all finds the job
      gone at its next commit (``JobTakenOver``) and stops, its batch rolled back.

    A job of ``manage.py ingest`` has no task to send again: one running with no sign of life for
    as long stopped with its process (killed, the machine restarted; an error or Ctrl-C fails it in
    the command) and is failed (``COMMAND_STOPPED``), its studies with it (``_job_failed``), for
    ``--resume`` to finish. One queued waits for the command's earlier jobs: never swept.

    Giving up on a job is ``_job_fail`` with its reason (``NEVER_STARTED``: its task never started
    it, so it made no study; ``STALLED``: it stopped again after ``LOST_SENDS`` sends in all, and
    the studies it created are failed with it; ``COMMAND_STOPPED``), unless a run took it meanwhile
    (the claim then finds nothing). What it stored and its staged file are kept for ``--resume``.

    Returns (sent again, given up), all kinds together."""
    from apps.imaging.tasks import ingest_job_run_task

    now = now or timezone.now()
    swept = IngestJob.objects.filter(upload__isnull=False)
    queued = swept.filter(state=JobState.QUEUED, started_at__isnull=True)
    sent, failed = lost_tasks_send(ingest_job_run_task, queued, queued_at="created_at", now=now,
                                   give_up=partial(_job_fail, error=NEVER_STARTED))
    after = timedelta(minutes=settings.LIGHTBOX_INGEST_STALLED_MINUTES)
    stalled = swept.filter(state=JobState.RUNNING, heartbeat_at__lt=now - after)
    more = lost_tasks_send(ingest_job_run_task, stalled, queued_at="heartbeat_at", now=now, after=after,
                           release={"task_id": ""}, give_up=partial(_job_fail, error=STALLED))
    # the claim's condition is read again once a batch committing now releases the row: a command
    # alive commits its batches and touches its job every HEARTBEAT_SECONDS between them, so its
    # job is fresh by then and left alone
    stopped = IngestJob.objects.filter(upload__isnull=True, state=JobState.RUNNING, heartbeat_at__lt=now - after)
    gone = sum(_job_fail(stopped.filter(pk=pk), pk, error=COMMAND_STOPPED)
               for pk in stopped.values_list("pk", flat=True))
    return sent + more[0], failed + more[1] + gone


# --- deletion ----------------------------------------------------------------------------------

class StudyBusy(ValidationError):
    """The study cannot be deleted now: an ingest is still adding to it."""


def study_delete(*, study: Study, by: Any, request: Any = None) -> int:
    """Delete one study version (its series, instances, rendition files and de-identified
    exports). Blobs are content-addressed and may be shared with other studies (dedup): those of
    the study that no row of any model points at any more are removed from storage. Returns the
    number of blobs removed. Audited (``imaging.study_deleted``, in the deleting transaction).

    Security contract: ``by`` must hold DELETE_STUDY on the study (policy; a refusal is recorded
    before anything is touched, and no grant gives it). A study an ingest job is still working
    on (queued or running) is refused with ``StudyBusy``: the study row is locked first, the lock
    an ingest takes before it adds to a study, so a job that has touched the study is seen. A share
    being created that names the study takes the same lock (``apps.sharing.services.grant_create``):
    the deletion waits for it to commit and then sees it, or it sees the study gone. A grant
    naming this study and no other is revoked: left naming nothing, it would cover the whole case.
    Other versions of the study are kept."""
    from apps.deid.services import study_export_blob_ids
    from apps.renditions.services import study_rendition_blob_ids
    from apps.sharing import policy
    from apps.sharing.models import Grant
    from apps.sharing.services import grants_revoke

    policy.require(by, policy.Action.DELETE_STUDY, study, request=request)
    with transaction.atomic():
        if not Study.objects.select_for_update().filter(pk=study.pk).exists():
            raise Study.DoesNotExist("the study was deleted meanwhile")
        if IngestJob.objects.adding_to([study]).exists():
            raise StudyBusy(gettext_lazy("Images are still being added to this study: it can be deleted once "
                                         "its upload has finished processing."), code="ingest_running")
        blob_ids = (set(study.instances.values_list("blob_id", flat=True)) | study_rendition_blob_ids(study=study)
                    | study_export_blob_ids(study=study))
        naming = (Grant.objects.filter(pk__in=Grant.objects.filter(studies=study).values("pk"))
                  .annotate(named=Count("studies", distinct=True)))
        revoked = grants_revoke(grants=list(naming.filter(named=1)), by=by, reason="study_deleted", request=request)
        # shares that named other studies too keep those (their scope narrows with the deletion)
        narrowed = [str(g.public_id) for g in naming.filter(named__gt=1, revoked_at__isnull=True)]
        details = {"version": study.version, "instances": study.num_instances, "grants_revoked": revoked,
                   "grants_narrowed": narrowed}
        study.delete()
        orphans = blobs_unreferenced_delete(blob_ids)
        details["blobs_removed"] = len(orphans)
        record(action="imaging.study_deleted", actor=by, organization_id=study.organization_id, target=study,
               request=request, details=details)
    blob_files_delete(orphans)
    return len(orphans)


# --- attaching to a case -----------------------------------------------------------------------

class StudyAttachRefused(ValidationError):
    """The study cannot be attached to that case: the case is another organization's, or the
    study is in a case already (moving a study between cases is not offered)."""


def attach_patient_ids_differ(*, patient_ids: list[str | None], mrn: str | None) -> bool:
    """Whether any of ``patient_ids`` (the patient IDs in the images of the versions an attach
    moves) is not ``mrn``, the case patient's MRN, once blanks around them and the case of their
    letters are ignored, as the portal matches MRNs (``apps.cases.models.mrn_key``: "demo-0001" is
    the patient DEMO-0001, whose case the new-case form opens for it). The one rule for "another
    patient's images": ``study_attach`` refuses them unless confirmed, and the attach confirmation
    (``forms.attach_patient_differs``) asks for the box by it. (Files compared with one another
    at ingest keep ``patient_key``: blanks aside, exactly as written.)"""
    from apps.cases.models import mrn_key

    key = mrn_key(mrn)
    return any(mrn_key(p) != key for p in patient_ids)


def study_attach(*, study: Study, case: Any, by: Any, request: Any = None,
                 patient_confirmed: bool = False) -> list[Study]:
    """Attach a study uploaded with no case ("attach later") to ``case``, with every other
    version of it (same StudyInstanceUID in the organization) that is in no case either: versions
    belong together, as ``_new_version`` keeps them. Returns the versions attached, each audited
    (``imaging.study_attached``, in the same transaction).

    Security contract: ``by`` must hold UPLOAD_STUDY on ``case`` (the policy's one rule for
    putting studies into a case, as the upload does: an open case they see, in an organization
    where their role may upload; a refusal is recorded). The case must be in the study's
    organization (``StudyAttachRefused``): data never crosses tenants. Everyone a live grant on
    the whole case reaches sees the study from then on (the page says so before confirming).

    The versions' rows are locked first (the lock an ingest takes before it adds to a study, and
    ``study_delete`` takes), and what is decided is read under that lock: a study attached
    meanwhile (a second submit) is refused with ``StudyAttachRefused``, nothing written twice; a
    study an ingest job is still working on (queued or running) is refused with ``StudyBusy``,
    since an ingest decides where its files go by the study's case, and saves the study's rows,
    until it ends.

    Another patient's images: when the patient ID in any version attached (read under the lock,
    so a version made since the page was shown counts) is not the case patient's MRN (read under
    the case's lock), the attach is refused (``StudyAttachRefused``, code ``patient_unconfirmed``,
    nothing attached) unless ``patient_confirmed``: the caller says the user checked that they are
    the case patient's images, which would otherwise reach the case's shares."""
    from apps.audit import actions as audit_actions
    from apps.sharing import policy

    policy.require(by, policy.Action.UPLOAD_STUDY, case, request=request)
    if case.organization_id != study.organization_id:
        raise StudyAttachRefused(gettext_lazy("This case belongs to another organization: a study can only be "
                                              "attached to a case of its own organization."),
                                 code="other_organization")
    with transaction.atomic():
        versions = list(Study.objects.select_for_update().versions_of(study).order_by("version"))
        locked = next((v for v in versions if v.pk == study.pk), None)
        if locked is None:
            raise Study.DoesNotExist("the study was deleted meanwhile")
        if locked.case_id is not None:
            raise StudyAttachRefused(gettext_lazy("This study is in a case already."), code="attached")
        if any(v.case_id not in (None, case.pk) for v in versions):
            # versions belong together: one in no case whose other version is in a case (a file of
            # a study in a case uploaded into no case or another case made a newer version in no
            # case: ``_may_add_to``) goes into that case or none, never into another (whose shares
            # would reach that patient's images), whether it is the older version or the newer
            raise StudyAttachRefused(gettext_lazy("Another version of this study is in a case already: this one can "
                                                  "only be attached to that case."), code="versions_elsewhere")
        # the case is locked and read again too: a case closed meanwhile takes no study (closing
        # ends its shares with what it holds then), and a close waits for this attach to commit
        from apps.cases.models import Case

        mrns = list(Case.objects.select_for_update(of=("self",)).filter(pk=case.pk).open()
                    .values_list("patient__mrn", flat=True))
        if not mrns:
            raise StudyAttachRefused(gettext_lazy("This case has been closed: reopen it to attach studies to it."),
                                     code="case_closed")
        if IngestJob.objects.adding_to(versions).exists():
            raise StudyBusy(gettext_lazy("Images are still being added to this study: it can be attached to a "
                                         "case once its upload has finished processing."), code="ingest_running")
        attached = [v for v in versions if v.case_id is None]
        if not patient_confirmed and attach_patient_ids_differ(patient_ids=[v.patient_id for v in attached],
                                                               mrn=mrns[0]):
            raise StudyAttachRefused(gettext_lazy("The patient ID in the images of this study, or of another version "
                                                  "of it that would be attached with it, is not the case's MRN: "
                                                  "confirm that these images belong to this case's patient to attach "
                                                  "them. Nothing was attached."), code="patient_unconfirmed")
        Study.objects.filter(pk__in=[v.pk for v in attached]).update(case=case, updated_at=timezone.now())
        for version in attached:
            version.case = case
            record(action=audit_actions.IMAGING_STUDY_ATTACHED, actor=by, organization_id=study.organization_id,
                   target=version, case=case, request=request,
                   details={"case": str(case.public_id), "version": version.version})
    study.case = case
    return attached


def blob_integrity_failed(*, instance: Instance, read: str, actor: Any = None, actor_label: str = "",
                          request: Any = None, details: dict[str, str] | None = None) -> None:
    """A stored file of ``instance`` (its original, or a rendition of it) failed its integrity check
    as it was read for someone (``cryptography.exceptions.InvalidTag`` from ``open_blob``: its
    bytes were altered since it was written): logged as an error and recorded for the security
    officer (``blob.integrity_failed``, outcome failed, target the instance), once per read attempt.
    ``read``: what read it (``viewer_frame``, ``education_image``, ``deid_export``, ``zip``). Names
    the instance by its public id only, never anything the file holds."""
    from apps.audit import actions as audit_actions

    logger.error("blob integrity check failed: instance %s (%s)", instance.public_id, read)
    record(action=audit_actions.BLOB_INTEGRITY_FAILED, actor=actor, actor_label=actor_label,
           organization_id=instance.organization_id, target=instance, outcome="failed", request=request,
           details={"read": read, **(details or {})})
