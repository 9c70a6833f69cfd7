"""What the viewer shows of a study: its series (counted in the database) and its instances a
page at a time.

No policy check here: the views have made it (the study) before calling. A series' instances are
listed a page (``SERIES_PAGE``) at a time, so neither the viewer's page nor one answer grows with
the study: the page embeds the series list and the first page of the first series, viewer.js
asks for the rest (apps.viewer.views.series_instances).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Q, Sum, Value, Window
from django.db.models.functions import Greatest, RowNumber
from django.utils.translation import gettext_lazy as _

from apps.imaging import j2k, pixels
from apps.imaging.models import IngestJob, Instance, Study, StudyState
from apps.renditions.models import Kind, Label, Rendition

#: instances in one answer (about 90 bytes each in JSON); a larger series takes several
SERIES_PAGE = 1000
#: the highest ``start`` accepted (a series of more instances is not expected)
MAX_START = 10_000_000
#: the viewer's order of a series' instances (as the frames' stack runs)
INSTANCE_ORDER = ("instance_number", "id")
#: an instance whose header gives an image to show (Rows and Columns), as ``image`` below says
HAS_IMAGE = Q(rows__gt=0, columns__gt=0)

#: what a series of objects with no image holds, by modality, for its thumbnail's placeholder
#: (another modality is named by its code)
NO_IMAGE_KINDS = {
    "SR": _("Report"), "PR": _("Presentation state"), "KO": _("Key images"), "DOC": _("Document"),
    "RTPLAN": _("Treatment plan"), "RTSTRUCT": _("Structure set"), "RTRECORD": _("Treatment record"),
    "ECG": _("Waveform"), "HD": _("Waveform"),
}


@dataclass(frozen=True)
class ViewerSeries:
    pk: int
    public_id: str
    number: int | None
    modality: str
    description: str
    count: int  # instances
    frames: int  # images in the stack: each instance's frames (at least one)
    #: public id of the middle one of its instances with an image (``HAS_IMAGE``); "" for a
    #: series with none (reports, presentation states, key object selections, plans...), whose
    #: thumbnail is a placeholder that names ``kind``, and no frame is asked for it
    thumbnail: str

    @property
    def kind(self) -> str:
        """What the series holds, for a thumbnail with no image: "" when it has one."""
        if self.thumbnail:
            return ""
        return str(NO_IMAGE_KINDS.get(self.modality.upper(), self.modality))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.public_id, "number": self.number, "modality": self.modality,
                "description": self.description, "count": self.count, "frames": self.frames,
                "thumbnail": self.thumbnail, "kind": self.kind}


@dataclass(frozen=True)
class NotReady:
    """Why a study is not opened in the viewer: its state, whether its ingest failed, and for a
    failed one what its ingest job says (``IngestJob.failure``), for those the views show it to."""

    state: str
    failed: bool
    failure: str = ""


def viewer_opens(*, study: Study) -> bool:
    """Whether ``study`` is shown in the viewer: once its ingest has ended with its images stored,
    ready or ready with warnings (``Study.is_ready``, as its downloads need). A study an ingest is
    still adding images to (receiving, processing, or again processing as more arrive) or whose
    ingest failed part way is not: its series may be incomplete, and shown labelled "diagnostic" a
    reader could take them for the whole study. The viewer's page, each frame and each series'
    instances ask this, and the study page offers "View" only when it says so. Access is the
    policy's (asked first); this is the study's state only."""
    return study.is_ready


def study_not_ready(*, study: Study) -> NotReady | None:
    """None when the viewer shows ``study`` (``viewer_opens``); else why not, with the failure its
    ingest job recorded (no patient data: a reason and what to do) when the ingest failed."""
    if viewer_opens(study=study):
        return None
    failed = study.state == StudyState.FAILED
    failure = ""
    if failed and study.created_by_job_id is not None:
        job = IngestJob.objects.filter(pk=study.created_by_job_id).first()
        found = job.failure if job is not None else None
        failure = found.message if found is not None else ""
    return NotReady(state=study.state, failed=failed, failure=failure)


def viewer_series_list(*, study: Study) -> list[ViewerSeries]:
    """The study's series that hold instances, in series order, with their counts and the middle
    one of their instances with an image (the thumbnail; none for a series with no image): two
    queries, whatever the number of series and instances."""
    rows = (study.series.annotate(count=Count("instances"),
                                  frames=Sum(Greatest(F("instances__frames"), Value(1))))
            .filter(count__gt=0).order_by("series_number", "id")
            .values("pk", "public_id", "series_number", "modality", "series_description", "count", "frames"))
    order = [F(name).asc() for name in INSTANCE_ORDER]
    middles = dict(Instance.objects.filter(HAS_IMAGE, study=study)
                   .annotate(position=Window(RowNumber(), partition_by=[F("series_id")], order_by=order),
                             in_series=Window(Count("id"), partition_by=[F("series_id")]))
                   .filter(position=F("in_series") / 2 + 1)
                   .values_list("series_id", "public_id"))
    return [ViewerSeries(pk=row["pk"], public_id=str(row["public_id"]), number=row["series_number"],
                         modality=row["modality"], description=row["series_description"], count=row["count"],
                         frames=row["frames"] or row["count"], thumbnail=str(middles.get(row["pk"], "")))
            for row in rows]


def viewer_series_instances(*, series_pk: int, start: int = 0,
                            limit: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Up to ``limit`` (SERIES_PAGE) instances of a series from position ``start``, and where the
    next page starts (None after the last)."""
    limit = SERIES_PAGE if limit is None else limit
    rows = list(Instance.objects.filter(series_id=series_pk).order_by(*INSTANCE_ORDER)
                .values("public_id", "frames", "instance_number", "rows", "columns")[start:start + limit + 1])
    # ``image``: whether the object's header gives an image to show (Rows and Columns): an RT plan,
    # a structured report or a waveform (ECG) has none, and the viewer says so without asking
    items = [{"id": str(row["public_id"]), "frames": row["frames"] or 1, "number": row["instance_number"],
              "rows": row["rows"], "columns": row["columns"], "image": bool(row["rows"] and row["columns"])}
             for row in rows[:limit]]
    return items, (start + limit if len(rows) > limit else None)


def study_originals_lossy(*, study: Study) -> bool:
    """Whether an original of the study is known to be lossy-compressed, the decision that labels
    its frames ``lossy`` (``pixels.header_lossy``, ``pixels.irreversibly_coded``) as far as it is
    known without reading a file: the original rendition's label (apps.renditions, made from each
    file's header and codestream after ingest), or an instance's transfer syntax that is lossy by
    its name (``pixels.transfer_syntax_lossy``). Two queries, whatever the study's size."""
    if Rendition.objects.filter(study=study, kind=Kind.ORIGINAL, label=Label.LOSSY_SOURCE).exists():
        return True
    # lossy by name: neither lossless by name nor a JPEG 2000 syntax decided by its codestream
    not_lossy_by_name = {"", *pixels.LOSSLESS_TRANSFER_SYNTAXES, *j2k.TRANSFER_SYNTAXES}
    return Instance.objects.filter(study=study).exclude(transfer_syntax_uid__in=not_lossy_by_name).exists()


def parse_start(value: str | None) -> int:
    """The ``start`` of a page request; raises ValueError when it is not a position."""
    if value in (None, ""):
        return 0
    start = int(value)  # ValueError for text
    if not 0 <= start <= MAX_START:
        raise ValueError(value)
    return start
