"""Renditions of a study (one row per study and kind) and their files (one per instance).

Kinds: the diagnostic original (the instance's own blob), a lossless-compressed DICOM copy
(offered only after a decode proved every pixel identical), a lossy preview image with a
burned-in warning band, and a low-resolution education export of the key images (a DICOM file, and
the labelled JPEG image the patient's zip holds in its place). Every file row
records what it is, its label, codec, bytes, ratio to the original, sha256 and CRC-32 (so a
package's layout is known before its first byte), or why it could not be made.

Rendition files are new blobs in the shared encrypted blob store (apps.imaging.blobs); the
original kind points at the instance's own blob.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from apps.core.models import Explained, PublicIdModel
from apps.organizations.scoping import CaseLinkedQuerySet


class Kind(models.TextChoices):
    ORIGINAL = "original", _("Original")
    LOSSLESS = "lossless", _("Lossless compressed")
    PREVIEW = "preview", _("Preview")
    EDUCATION = "education", _("Education")


class Label(models.TextChoices):
    """What a file may be used for; shown as a badge and written into every package."""

    DIAGNOSTIC_ORIGINAL = "diagnostic_original", _("Diagnostic original")
    DIAGNOSTIC_LOSSLESS = "diagnostic_lossless", _("Diagnostic - lossless compressed")
    PREVIEW_LOSSY = "preview_lossy", _("Preview - lossy")
    EDUCATION_LOW_RES = "education_low_res", _("Patient education - low resolution")
    #: an original already lossy-compressed when it was received: never labelled diagnostic-grade
    LOSSY_SOURCE = "lossy_source", _("Original as received - lossy compressed, not diagnostic-grade")
    #: the lossless-compressed rendition of such an original: the original's (lossy) pixels kept
    #: exactly, so no better than it; not the original itself
    LOSSLESS_OF_LOSSY = "lossless_of_lossy", _(
        "Lossless copy of a lossy original - same pixels as the original, not diagnostic-grade")


#: the label of each kind for a source that is not itself lossy
KIND_LABEL = {Kind.ORIGINAL: Label.DIAGNOSTIC_ORIGINAL, Kind.LOSSLESS: Label.DIAGNOSTIC_LOSSLESS,
              Kind.PREVIEW: Label.PREVIEW_LOSSY, Kind.EDUCATION: Label.EDUCATION_LOW_RES}

#: the label of each diagnostic kind for a source already lossy-compressed (the lossy kinds keep
#: theirs: a preview or an education image never claims more than it is)
LOSSY_SOURCE_KIND_LABEL = {Kind.ORIGINAL: Label.LOSSY_SOURCE, Kind.LOSSLESS: Label.LOSSLESS_OF_LOSSY}

#: labels that claim diagnostic grade
DIAGNOSTIC_LABELS = frozenset({Label.DIAGNOSTIC_ORIGINAL, Label.DIAGNOSTIC_LOSSLESS})


def label_for(kind: str, *, source_lossy: bool) -> Label:
    """The label of a rendition of ``kind`` (a file's, a rendition's, a package's): the one
    decision the study's lists, its downloads and the viewer read. A source already
    lossy-compressed is never called diagnostic-grade, and each kind still says what it is (the
    lossless copy of a lossy original is not labelled as that original)."""
    kind = Kind(kind)
    return LOSSY_SOURCE_KIND_LABEL.get(kind, KIND_LABEL[kind]) if source_lossy else KIND_LABEL[kind]

#: the sharing rendition (apps.sharing.usecases.Rendition) whose permission covers each kind: the
#: lossless copy is pixel-identical, so it is a diagnostic rendition under "original"
SHARING_RENDITION = {Kind.ORIGINAL: "original", Kind.LOSSLESS: "original", Kind.PREVIEW: "preview",
                     Kind.EDUCATION: "education"}

#: the order downloads are offered in (staged delivery: the preview first), on the study page and
#: the shared case's page alike
OFFER_ORDER = (Kind.PREVIEW, Kind.EDUCATION, Kind.LOSSLESS, Kind.ORIGINAL)


class Status(models.TextChoices):
    PENDING = "pending", _("Being made")
    READY = "ready", _("Ready")
    PARTIAL = "partial", _("Ready for some images")
    UNAVAILABLE = "unavailable", _("Not available")


class RenditionQuerySet(CaseLinkedQuerySet):
    case_lookup = "study__case_id"


class Rendition(PublicIdModel, Explained):
    """One kind of rendition of one study version: the summary the study page shows."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="+")
    study = models.ForeignKey("imaging.Study", on_delete=models.CASCADE, related_name="renditions")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    label = models.CharField(max_length=32, choices=Label.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    codec = models.CharField(max_length=100, blank=True, help_text="transfer syntax name or image type")
    lossy = models.BooleanField(default=False)
    files_ready = models.PositiveIntegerField(default=0)
    files_unavailable = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0, help_text="bytes of the ready files")
    original_bytes = models.BigIntegerField(default=0, help_text="bytes of the originals of the ready files")
    ratio = models.FloatField(null=True, blank=True, help_text="bytes / original_bytes")
    updated_at = models.DateTimeField(auto_now=True)

    objects = RenditionQuerySet.as_manager()

    class Meta:
        ordering = ["study", "kind"]
        constraints = [models.UniqueConstraint(fields=["study", "kind"], name="one_rendition_per_study_kind")]

    def __str__(self) -> str:
        return f"Rendition {self.kind} of study {self.study_id}"

    @property
    def is_diagnostic(self) -> bool:
        return self.label in DIAGNOSTIC_LABELS

    @property
    def compression_ratio(self) -> float | None:
        """original : rendition (2.0 means half the bytes)."""
        return 1 / self.ratio if self.ratio else None


class RenditionFileQuerySet(CaseLinkedQuerySet):
    case_lookup = "study__case_id"

    def ready(self) -> RenditionFileQuerySet:
        return self.filter(status=Status.READY)


class RenditionFile(PublicIdModel, Explained):
    """One instance's file of one rendition, or the reason it could not be made."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="+")
    study = models.ForeignKey("imaging.Study", on_delete=models.CASCADE, related_name="+")
    rendition = models.ForeignKey(Rendition, on_delete=models.CASCADE, related_name="files")
    instance = models.ForeignKey("imaging.Instance", on_delete=models.CASCADE, related_name="rendition_files")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    label = models.CharField(max_length=32, choices=Label.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    codec = models.CharField(max_length=100, blank=True, help_text="transfer syntax UID or MIME type")
    extension = models.CharField(max_length=8, default="dcm")
    blob = models.ForeignKey("imaging.Blob", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sha256 = models.CharField(max_length=64, blank=True)
    crc32 = models.BigIntegerField(null=True, blank=True)
    bytes = models.BigIntegerField(default=0)
    original_bytes = models.BigIntegerField(default=0)
    lossy = models.BooleanField(default=False, help_text="this file went through lossy compression")
    source_lossy = models.BooleanField(default=False, help_text="the original was already lossy-compressed")
    identity_removed = models.BooleanField(default=False, help_text=(
        "Patient Identity Removed (0012,0062) = YES, verified: nothing the de-identification profile "
        "would remove is left (apps.renditions.encoders.identity_verified)"))
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    #: an education file's image for the patient's zip (``encoders.education_export``): the same
    #: pixels as a JPEG a phone opens, the "not for diagnosis" band burned in; its size, CRC-32 and
    #: sha256 known before a package's first byte, as the file's own
    image_blob = models.ForeignKey("imaging.Blob", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    image_sha256 = models.CharField(max_length=64, blank=True)
    image_crc32 = models.BigIntegerField(null=True, blank=True)
    image_bytes = models.BigIntegerField(default=0)

    objects = RenditionFileQuerySet.as_manager()

    class Meta:
        ordering = ["rendition", "id"]
        constraints = [models.UniqueConstraint(fields=["rendition", "instance"],
                                               name="one_file_per_rendition_instance")]
        indexes = [models.Index(fields=["study", "kind", "status"])]

    def __str__(self) -> str:
        return f"RenditionFile {self.public_id}"

    @property
    def ratio(self) -> float | None:
        return self.bytes / self.original_bytes if self.original_bytes and self.status == Status.READY else None


class RenditionRun(models.Model):
    """The renditions task of one study version, from its queuing to its start. Queued
    (``services.renditions_queue``: ``started_at`` empty), then claimed by the task that starts it,
    by its message's id (a message the broker delivers again keeps it): a duplicate message (sent
    again by the lost-task sweep while the first still waited) finds the run started by another
    and leaves the work to it. A run queued and never started is sent again by the sweep
    (``services.study_renditions_lost_send``, ``apps.core.queue.lost_tasks_send``), and deleted
    when the sweep gives up (its renditions then say why they were not made). Never shown."""

    study = models.OneToOneField("imaging.Study", on_delete=models.CASCADE, related_name="+")
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    #: queued and never started: when the sweep last sent its task again, and how many times
    resent_at = models.DateTimeField(null=True, blank=True)
    resends = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"RenditionRun of study {self.study_id}"


def kinds_unavailable(study_ids) -> dict[int, set[str]]:
    """For each of ``study_ids``, the kinds of rendition the study's page says are "Not
    available" (none of their images could be made: a lossless copy of an original received
    lossy-compressed, a preview whose task was given up): what a download never serves and no
    page offers (``renditions.views._not_available``, the shared-case page's buttons). One query."""
    found: dict[int, set[str]] = {}
    for study_id, kind in Rendition.objects.filter(study_id__in=list(study_ids), status=Status.UNAVAILABLE) \
            .values_list("study_id", "kind"):
        found.setdefault(study_id, set()).add(kind)
    return found


@dataclass(frozen=True)
class Progress:
    """How far one study's rendition of one kind is made (``renditions_progress``)."""

    status: str | None  # the rendition's status; None before its row exists (its work not begun)
    made: int           # its images that have their file of the kind (made, or found impossible)
    images: int         # its images that are to have one (the key images, one a series, for education)

    @property
    def unavailable(self) -> bool:
        """What the study's page says is "Not available" (as ``kinds_unavailable``)."""
        return self.status == Status.UNAVAILABLE

    @property
    def being_made(self) -> bool:
        """Still being made: some of its images have no file of it yet, their work not begun or
        not finished (the page says "Being made" or "Not made yet"; or images added since it was
        made), and it has not ended as "Not available". A package of it would lack those images
        (a lossless one would hold their originals in their place), so it is not downloaded until
        they are made. A file that could not be made is made: its row says why."""
        return not self.unavailable and self.made < self.images


def renditions_progress(study_ids, kind: str) -> dict[int, Progress]:
    """The ``Progress`` of the rendition of ``kind`` of each of ``study_ids``: what a download
    asks before it builds a package (``renditions.views._not_ready``), so that no zip of a
    rendition still being made goes out. The original is never being made (its rows are made
    when a package asks, ``services.originals_ensure``): {} for it. One query."""
    from apps.imaging.models import Instance, Study

    kind = Kind(kind)
    if kind == Kind.ORIGINAL:
        return {}
    # the education copy is made of one key image a series (``services.key_instance_ids``)
    expected = Count("series_id", distinct=True) if kind == Kind.EDUCATION else Count("pk")
    images = Instance.objects.filter(study=OuterRef("pk")).order_by().values("study").annotate(n=expected)
    made = (RenditionFile.objects.filter(study=OuterRef("pk"), kind=kind).order_by().values("study")
            .annotate(n=Count("pk")))
    status = Rendition.objects.filter(study=OuterRef("pk"), kind=kind).values("status")[:1]
    rows = (Study.objects.filter(pk__in=list(study_ids))
            .annotate(n_images=Coalesce(Subquery(images.values("n")), 0),
                      n_made=Coalesce(Subquery(made.values("n")), 0), rendition_status=Subquery(status))
            .values_list("pk", "rendition_status", "n_made", "n_images"))
    return {pk: Progress(status=status_, made=n_made, images=n_images) for pk, status_, n_made, n_images in rows}
