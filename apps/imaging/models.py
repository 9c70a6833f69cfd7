"""Studies, series and instances (the index people search and check), the encrypted,
content-addressed blobs that hold the original bytes, and the uploads and ingest jobs that
bring them in.

PHI: a study's patient name and id are indexed here (as on ``cases.Patient``); they never go
into logs, task arguments, audit details or blob storage names.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import ClassVar, NamedTuple

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _

from apps.core.models import Explained, PublicIdModel
from apps.organizations.scoping import CaseLinkedQuerySet, WholeCaseQuerySet


class Blob(models.Model):
    """One stored original, content-addressed by the sha256 of its plaintext and stored once.

    The bytes are encrypted at rest with AES-256-GCM in chunks (apps.imaging.blobs); the data key
    is wrapped by the master key named ``key_id``. A blob holds no tenant or patient data of its
    own: instances (which are tenant-scoped) point at it. It is never addressed from a URL."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField(help_text="plaintext bytes")
    storage_name = models.CharField(max_length=300, unique=True)
    key_id = models.CharField(max_length=64)
    wrapped_key = models.BinaryField()
    chunk_size = models.PositiveIntegerField()
    nonce_prefix = models.BinaryField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["key_id"])]

    def __str__(self) -> str:
        return f"Blob {self.sha256[:12]}"


class StudyState(models.TextChoices):
    RECEIVING = "receiving", _("Receiving")
    PROCESSING = "processing", _("Processing")
    READY = "ready", _("Ready")
    READY_WITH_WARNINGS = "ready_with_warnings", _("Ready with warnings")
    FAILED = "failed", _("Failed")


class StudyLinkedQuerySet(CaseLinkedQuerySet):
    """Rows of a study (the study, its series, instances): a grant scoped to some studies of a
    case shows those studies only, not the case's others (apps.sharing.policy decides which)."""

    #: path from the model to its study's id ("id" for Study itself)
    study_lookup: ClassVar[str] = "study_id"

    def visibility(self, user) -> Q:
        from apps.sharing import policy

        members = super(CaseLinkedQuerySet, self).visibility(user)  # the organization's own staff
        return members | Q(**{f"{self.study_lookup}__in": policy.granted_study_ids(user)})


class StudyQuerySet(StudyLinkedQuerySet):
    study_lookup = "id"

    def ready(self) -> StudyQuerySet:
        return self.filter(state__in=[StudyState.READY, StudyState.READY_WITH_WARNINGS])

    def latest_versions(self) -> StudyQuerySet:
        """The versions shown where they are, a case or no case: those no newer version
        supersedes there. A study's version in a case stays its case's while the version after it
        is in no case (an upload sent outside the case makes one there, ``services._may_add_to``,
        until ``study_attach`` puts it into the case, where it then supersedes the older one); in
        no case, the newest version there (one whose next version is in a case, from before
        uploads stopped placing versions in cases, is still the one in no case)."""
        newer_in_its_case = Study.objects.filter(previous=OuterRef("pk"), case_id=OuterRef("case_id"))
        newer_in_no_case = Study.objects.filter(previous=OuterRef("pk"), case__isnull=True)
        return self.filter(Q(case__isnull=False) & ~Exists(newer_in_its_case)
                           | Q(case__isnull=True) & ~Exists(newer_in_no_case))

    def versions_of(self, study: Study) -> StudyQuerySet:
        """Every version of ``study`` (its StudyInstanceUID in its organization), itself included."""
        return self.for_org(study.organization_id).filter(study_instance_uid=study.study_instance_uid)


class Study(PublicIdModel):
    """One version of a DICOM study in one organization. A changed instance re-sent with the
    same SOPInstanceUID makes a new version (``version`` + 1, ``previous``), never an overwrite."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="studies")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="studies")
    study_instance_uid = models.CharField(_("Study Instance UID"), max_length=64)
    version = models.PositiveIntegerField(_("version"), default=1)
    previous = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="superseded_by")
    accession_number = models.CharField(_("accession number"), max_length=64, blank=True)
    study_date = models.DateField(_("study date"), null=True, blank=True)
    study_description = models.CharField(_("description"), max_length=200, blank=True)
    modalities = models.CharField(_("modalities"), max_length=100, blank=True, help_text="e.g. CT,PT")
    body_part_examined = models.CharField(_("body part"), max_length=64, blank=True)
    patient_id = models.CharField(_("patient ID"), max_length=64, blank=True)   # PHI
    issuer_of_patient_id = models.CharField(_("issuer of patient ID"), max_length=64, blank=True)
    patient_name = models.CharField(_("patient name"), max_length=200, blank=True)  # PHI
    patient_birth_date = models.DateField(_("patient birth date"), null=True, blank=True)  # PHI
    state = models.CharField(_("state"), max_length=24, choices=StudyState.choices, default=StudyState.RECEIVING)
    warnings = models.JSONField(default=list, blank=True)
    num_series = models.PositiveIntegerField(default=0)
    num_instances = models.PositiveIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    created_by_job = models.ForeignKey("IngestJob", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="created_studies")
    updated_at = models.DateTimeField(auto_now=True)

    objects = StudyQuerySet.as_manager()

    class Meta:
        ordering = ["-study_date", "-created_at"]
        verbose_name_plural = "studies"
        constraints = [models.UniqueConstraint(fields=["organization", "study_instance_uid", "version"],
                                               name="one_study_version_per_org")]
        indexes = [models.Index(fields=["organization", "study_instance_uid"]),
                   models.Index(fields=["organization", "accession_number"]),
                   models.Index(fields=["organization", "patient_id"]),
                   models.Index(fields=["organization", "state"])]

    def __str__(self) -> str:  # ids only: str() ends up in logs and admin messages
        return f"Study {self.public_id}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("imaging:study_detail", kwargs={"study_id": self.public_id})

    @property
    def is_ready(self) -> bool:
        return self.state in (StudyState.READY, StudyState.READY_WITH_WARNINGS)

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split(",") if m]


class SeriesQuerySet(StudyLinkedQuerySet):
    case_lookup = "study__case_id"


class Series(PublicIdModel):
    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="+")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(_("Series Instance UID"), max_length=64)
    series_number = models.IntegerField(_("series number"), null=True, blank=True)
    modality = models.CharField(_("modality"), max_length=16, blank=True)
    series_description = models.CharField(_("description"), max_length=200, blank=True)
    body_part_examined = models.CharField(_("body part"), max_length=64, blank=True)
    num_instances = models.PositiveIntegerField(default=0)

    objects = SeriesQuerySet.as_manager()

    class Meta:
        ordering = ["series_number", "id"]
        verbose_name_plural = "series"
        constraints = [models.UniqueConstraint(fields=["study", "series_instance_uid"],
                                               name="one_series_uid_per_study")]

    def __str__(self) -> str:
        return f"Series {self.public_id}"


class InstanceQuerySet(StudyLinkedQuerySet):
    case_lookup = "study__case_id"


class Instance(PublicIdModel):
    """One DICOM object (SOP instance) of one study version; its bytes are ``blob``."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="+")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="instances")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="instances")
    sop_instance_uid = models.CharField(_("SOP Instance UID"), max_length=64)
    sop_class_uid = models.CharField(_("SOP Class UID"), max_length=64, blank=True)
    transfer_syntax_uid = models.CharField(_("Transfer Syntax UID"), max_length=64, blank=True)
    instance_number = models.IntegerField(null=True, blank=True)
    frames = models.PositiveIntegerField(default=1)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    size = models.BigIntegerField(_("bytes"))
    sha256 = models.CharField(max_length=64)
    #: its pixels may identify the patient: text burned in, said or likely, or a face (the
    #: de-identification's screening, ``apps.imaging.dicom.screen_pixels``), set at ingest from its
    #: header. An anonymous link without a second factor gives no such image
    #: (``apps.sharing.policy.withholds_identifying_pixels``)
    pixels_may_identify = models.BooleanField(default=False, db_index=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["instance_number", "id"]
        constraints = [models.UniqueConstraint(fields=["study", "sop_instance_uid"], name="one_sop_uid_per_study")]
        indexes = [models.Index(fields=["sha256"])]

    def __str__(self) -> str:
        return f"Instance {self.public_id}"


class UploadState(models.TextChoices):
    UPLOADING = "uploading", _("Uploading")
    COMPLETE = "complete", _("Received")
    TERMINATED = "terminated", _("Cancelled")
    EXPIRED = "expired", _("Expired")


class UploadQuerySet(WholeCaseQuerySet):

    def expired(self, now=None):
        from django.utils import timezone

        return self.filter(state=UploadState.UPLOADING, expires_at__lt=now or timezone.now())


class Upload(PublicIdModel):
    """A tus upload: bytes arrive in PATCH requests into an encrypted staging file (never in
    memory, never in clear on disk) until ``offset == length``; then an IngestJob takes over."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="uploads")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="uploads")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    length = models.BigIntegerField(null=True, blank=True)  # null while Upload-Defer-Length
    offset = models.BigIntegerField(default=0)
    filename = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    staging_name = models.CharField(max_length=300, blank=True)
    key_id = models.CharField(max_length=64, blank=True)
    wrapped_key = models.BinaryField(blank=True, default=b"")
    state = models.CharField(max_length=16, choices=UploadState.choices, default=UploadState.UPLOADING)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    #: ingest while the bytes arrive (apps.imaging.follow): the next zip local header to read,
    #: and whether following has stopped (not a zip, an entry it leaves to the job, job started)
    follow_offset = models.BigIntegerField(default=0)
    follow_done = models.BooleanField(default=False)
    #: a follower task is queued and has not yet begun reading: appends queue no other
    follow_queued = models.BooleanField(default=False)

    objects = UploadQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Upload {self.public_id}"


class JobState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Processing")
    DONE = "done", _("Done")
    DONE_WITH_WARNINGS = "done_with_warnings", _("Done with warnings")
    FAILED = "failed", _("Failed")


#: what a finished job none of whose files went into a study shows instead of its state ("Done
#: with warnings" said nothing of a text file, an empty file, a damaged or nested zip sent alone):
#: ``IngestJob.outcome`` and ``outcome_label``, told from its per-file outcomes, not stored
NOTHING_IMPORTED = "nothing_imported"
NOTHING_IMPORTED_LABEL = _("Nothing imported")


class IngestJobQuerySet(WholeCaseQuerySet):
    def adding_to(self, studies) -> IngestJobQuerySet:
        """Jobs still adding to any of ``studies`` (queued or running): a study is not deleted
        nor attached to a case until they end, since an ingest decides where its files go by the
        study's case, and saves the study's rows, until it ends. The one rule for both, and for the
        study page that offers them."""
        return self.filter(studies__in=studies, state__in=[JobState.QUEUED, JobState.RUNNING])


class JobFailure(NamedTuple):
    """Why a failed job failed and what can be done, for the person who uploaded it: a stable
    code (clients go by it) and a message in the reader's language."""

    code: str
    message: str


#: ``IngestJob.error`` of a job queued and never started (its task lost by the task queue, sent
#: again ``apps.core.queue.LOST_SENDS`` times): the sweep's give-up, not an exception's type
NEVER_STARTED = "NeverStarted"

#: ``IngestJob.error`` of a job that started and then stopped committing its batches (its worker
#: and its message both lost: a broker restarted without its messages while the worker died), sent
#: again until ``apps.core.queue.LOST_SENDS`` sends in all: the sweep's give-up
STALLED = "Stalled"

#: ``IngestJob.error`` holds the type of the exception the task gave up on (apps.imaging.tasks),
#: never its text (a path may name the patient); each type the task can give up on, by code
FAILURE_CODES = {
    "StorageUnavailable": "storage_unavailable",   # storage still failing after the retries
    "OperationalError": "database_unavailable",    # the database, likewise
    "FileNotFoundError": "upload_unreadable",      # the staged file was gone
    "PermissionError": "upload_unreadable",        # or could not be read
    NEVER_STARTED: "never_started",                # the task queue lost it, sent again and lost again
    STALLED: "stalled",                            # it stopped partway, sent again and stopped again
}
# what is true of each: the staged file stays until the job finishes, so a job that failed on
# storage or the database loses nothing and ``manage.py ingest --resume`` finishes it
# (tests/imaging/test_storage_down.py); a staged file that cannot be read must be sent again
FAILURE_MESSAGES = {
    "storage_unavailable": _("The images could not be stored: the portal's storage did not answer, even after "
                             "several tries. Nothing you sent is lost and you need not upload it again: once "
                             "storage is back, an administrator can finish it with "
                             "manage.py ingest --resume %(job)s."),
    "database_unavailable": _("The images could not be recorded: the portal's database did not answer, even "
                              "after several tries. Nothing you sent is lost and you need not upload it again: "
                              "an administrator can finish it with manage.py ingest --resume %(job)s."),
    "never_started": _("The images were received, but their processing never started: the portal's work "
                       "queue lost it, even after it was sent again several times. Nothing you sent is lost "
                       "and you need not upload it again: an administrator can finish it with "
                       "manage.py ingest --resume %(job)s."),
    "stalled": _("The processing of the images stopped partway and did not resume, even after it was started "
                 "again several times. What was stored is kept, and you need not upload again: an administrator "
                 "can finish it with manage.py ingest --resume %(job)s."),
    "upload_unreadable": _("The uploaded file could no longer be read on the server. Please upload it again."),
    # the job failed and its staged file was discarded since (LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS):
    # whatever the error, nothing is left to resume
    "upload_discarded": _("The processing failed, and the uploaded file has since been removed from the server "
                          "(the file of a failed upload is kept for %(days)s days). Please upload it again."),
    "unexpected": _("An unexpected error stopped the processing. Please tell an administrator, quoting "
                    "reference %(job)s."),
}


class IngestJob(PublicIdModel):
    """One ingest run over an upload (or a server-side path, from ``manage.py ingest``). Safe to
    run twice: every effect is keyed (blob by sha256, instance by study and SOP UID, report line
    by job and path)."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT,
                                     related_name="ingest_jobs")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    upload = models.OneToOneField(Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="job")
    source_path = models.CharField(max_length=1000, blank=True)  # manage.py ingest
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=24, choices=JobState.choices, default=JobState.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    files_total = models.PositiveIntegerField(default=0)
    files_ingested = models.PositiveIntegerField(default=0)
    files_duplicate = models.PositiveIntegerField(default=0)
    files_skipped = models.PositiveIntegerField(default=0)
    #: files whose reading, parsing, hashing and storing was done while the upload still arrived
    files_prepared = models.PositiveIntegerField(default=0)
    bytes_stored = models.BigIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    studies = models.ManyToManyField(Study, blank=True, related_name="ingest_jobs")
    #: the id of the task message running the job (a message the broker delivers again keeps it):
    #: another message for the job, a duplicate, leaves it alone (``services.ingest_job_run``)
    task_id = models.CharField(max_length=64, blank=True)
    #: queued and never started: when the sweep last sent its task again, and how many times
    #: (``services.ingest_jobs_lost_send``)
    resent_at = models.DateTimeField(null=True, blank=True)
    resends = models.PositiveSmallIntegerField(default=0)
    #: the running job's last sign of life: its claim, then each batch it commits. A job running
    #: with none for ``LIGHTBOX_INGEST_STALLED_MINUTES`` is sent again (``services.ingest_jobs_lost_send``)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    #: the job failed and its upload's staged file was discarded ``LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS``
    #: after (``uploads.failed_uploads_discard``): it cannot be resumed, the file must be sent again
    upload_discarded_at = models.DateTimeField(null=True, blank=True)

    objects = IngestJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"IngestJob {self.public_id}"

    @property
    def imported_nothing(self) -> bool:
        """Finished, and not one of its files is in a study: each was skipped (not DICOM, empty,
        damaged, cut short, a zip inside the zip), or there was none. Told from the counts of its
        per-file outcomes the job keeps when it ends (``files_ingested`` counts new versions too;
        a duplicate's images are in the portal already), so a list of jobs reads nothing more."""
        return (self.state in (JobState.DONE, JobState.DONE_WITH_WARNINGS)
                and not self.files_ingested and not self.files_duplicate)

    @property
    def outcome(self) -> str:
        """The job's state, or ``NOTHING_IMPORTED`` for a finished job that imported nothing."""
        return NOTHING_IMPORTED if self.imported_nothing else self.state

    @property
    def outcome_label(self) -> str:
        """``outcome`` in the reader's language, where pages show the job's state."""
        return str(NOTHING_IMPORTED_LABEL if self.imported_nothing else self.get_state_display())

    @property
    def source_name(self) -> str:
        """What the uploader knows the upload by: the name of the file they sent, or, for a
        server folder or file (``manage.py ingest``, the demo), its last part, never the server's
        path (where the portal keeps its files is no uploader's business, and a temporary folder's
        name says nothing). Reads ``upload``: select it with the job."""
        if self.upload_id is not None and self.upload.filename:
            return self.upload.filename
        return PurePath(self.source_path.rstrip("/\\")).name if self.source_path else ""

    @property
    def failure(self) -> JobFailure | None:
        """Why the job failed and what to do, by the type of error recorded; None unless failed."""
        if self.state != JobState.FAILED:
            return None
        code = "upload_discarded" if self.upload_discarded_at else FAILURE_CODES.get(self.error, "unexpected")
        return JobFailure(code, str(FAILURE_MESSAGES[code]) % {"job": self.public_id,
                                                              "days": settings.LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS})


class FileOutcome(models.TextChoices):
    INGESTED = "ingested", _("Ingested")
    DUPLICATE = "duplicate", _("Duplicate (already stored)")
    NEW_VERSION = "new_version", _("Changed: stored as a new study version")
    SKIPPED = "skipped", _("Skipped")


class IngestFileResult(Explained):
    """One line of a job's per-file report: what happened to this file and why."""

    job = models.ForeignKey(IngestJob, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1000)
    outcome = models.CharField(max_length=16, choices=FileOutcome.choices)
    size = models.BigIntegerField(null=True, blank=True)
    study = models.ForeignKey(Study, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    instance = models.ForeignKey(Instance, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["job", "path"], name="one_report_line_per_job_path")]

    def __str__(self) -> str:
        return f"{self.path}: {self.outcome}"


class PreparedEntry(models.Model):
    """A zip entry of an upload still arriving, already extracted, checked, parsed, hashed and
    stored as a blob by the follower (apps.imaging.follow), read from its local header. Not an
    instance yet: the ingest job uses it only if the zip's central directory names the same
    entry (offset, name, CRC, sizes), after the same checks as any entry, and deletes these rows
    when it ends. The header holds what the instance and study rows need (patient fields
    included, as the Study row does); nothing here is shown to anyone."""

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="prepared")
    offset = models.BigIntegerField(help_text="offset of the local file header in the upload")
    name = models.CharField(max_length=1024)
    crc32 = models.BigIntegerField()
    compress_size = models.BigIntegerField()
    file_size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    header = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upload", "offset"], name="prepared_entry_once")]

    def __str__(self) -> str:
        return f"Prepared entry at {self.offset}"
