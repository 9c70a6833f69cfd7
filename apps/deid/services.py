"""De-identified exports: start (a staff member, from the study page), run (the task), package.

Security contract:
- only ``export_deidentified`` holders start, see the contents of, and download an export
  (radiologists and clinicians of the study's organization; never through a grant);
- an instance leaves only through ``apps.deid.profile.deidentify_file``; one the profile excludes
  is recorded with its reason and never stored;
- the outputs are new blobs in the encrypted store (``put_blob_locked``), nothing in clear on disk;
- ``deid.export_started`` is recorded when an export is asked for (who, study, case,
  organization), ``deid.exported`` once, when it becomes ready (details: counts and bytes, never
  names or UIDs), and ``deid.export_failed`` once, when it fails (outcome failed; the kind of
  failure only, never an exception's message: it may quote a path or a DICOM value).

``deid_export_run`` is idempotent: a file row is keyed by (export, instance) and the UID key is
the export's, so a re-run (the task is ``acks_late``) makes only the missing files, byte for byte
what the first run would have made, and the ready transition is a conditional UPDATE.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from apps.audit import actions as audit_actions
from apps.audit.services import record
from apps.core import i18n
from apps.core.i18n import Deferred
from apps.core.queue import never_started_after, send_on_commit
from apps.deid.models import LABEL, DeidExport, DeidExportFile, Outcome, State
from apps.deid.profile import Excluded, Reason, deidentify_file
from apps.imaging.blobs import content_fields, open_blob, row_with_content_create
from apps.imaging.models import Instance, Study
from apps.imaging.services import blob_integrity_failed
from apps.imaging.storage import STORAGE_ERRORS
from apps.sharing import policy
from apps.sharing.policy import Action

logger = logging.getLogger(__name__)

_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


class InvalidPseudonym(ValueError):
    pass


def pseudonym_default(*, study: Study) -> str:
    """The case's public id (a pseudonym only the organization can link back), else the study's."""
    return str(study.case.public_id if study.case_id else study.public_id)


def _identifiers(study: Study) -> list[str]:
    """The patient's name parts and record numbers, as the index knows them (to refuse them as a
    pseudonym)."""
    values = [study.patient_id, *re.split(r"[\s^,]+", study.patient_name or "")]
    case = study.case if study.case_id else None
    patient = getattr(case, "patient", None) if case is not None else None
    if patient is not None:
        values += [patient.mrn, *re.split(r"[\s^,]+", patient.name or "")]
    return [v.lower() for v in values if v and len(v) >= 3]


def pseudonym_check(*, study: Study, value: str) -> str:
    """The cleaned pseudonym, or InvalidPseudonym with a message to show."""
    value = (value or "").strip()
    if not _PSEUDONYM.match(value):
        raise InvalidPseudonym(_("Use 1 to 64 characters: letters without accents (A-Z), digits, spaces, dots, dashes "
                                   "or underscores, starting with a letter or a digit."))
    lowered = value.lower()
    if any(part in lowered for part in _identifiers(study)):
        raise InvalidPseudonym(_("The pseudonym must not contain the patient's name or record number."))
    return value


#: an export of the same thing that finished this recently is the one a second start meant (a
#: double click, a second tab, answered after a small study's export already finished); after
#: it, starting again makes a new export (its own UID mapping; the profile may have changed)
JUST_FINISHED = timedelta(minutes=5)


def deid_export_start(*, study: Study, by, pseudonym: str, request=None, enqueue: bool = True) -> DeidExport:
    """Queue a de-identified export of ``study`` (refused and recorded without
    ``export_deidentified``). The task runs once the row is committed (``enqueue=False``: the
    caller runs ``deid_export_run`` itself, as the demo seed does).

    Idempotent: while an export by ``by`` of the same study with the same pseudonym (the profile
    is one, so that is the same thing) is queued or running, or finished ready less than
    ``JUST_FINISHED`` ago, that export is returned and nothing is recorded (no second
    ``deid.export_started``). A failed one is not: starting again is the retry. Nor is one still
    queued ``apps.core.queue.never_started_after()`` after it was made (the setting that also tells
    the lost-task sweeps of ingest and renditions): the task queue lost it, so it is marked failed
    (recorded) and a new one is made, or the person could never have their export. Two starts at once
    (a double click, two tabs) are serialized by a lock on the study row, taken before the look for
    an existing export: the second waits for the first to commit, then finds its export. The same
    lock ``study_delete`` takes: a study deleted meanwhile raises ``Study.DoesNotExist``."""
    policy.require(by, Action.EXPORT_DEIDENTIFIED, study, request=request)
    pseudonym = pseudonym_check(study=study, value=pseudonym)
    from apps.deid.tasks import deid_export_task

    with transaction.atomic():
        if not Study.objects.select_for_update(no_key=True).filter(pk=study.pk).exists():
            raise Study.DoesNotExist("the study was deleted meanwhile")
        same = DeidExport.objects.filter(study=study, created_by=by, pseudonym=pseudonym)
        for lost in same.filter(state=State.QUEUED, created_at__lt=timezone.now() - never_started_after()):
            _fail(lost, Deferred(gettext_noop("Never started: the portal's work queue lost it. Starting the export "
                                              "again made a new one.")), "never_started")
        existing = (same.filter(Q(state__in=[State.QUEUED, State.RUNNING])
                                | Q(state=State.READY, finished_at__gte=timezone.now() - JUST_FINISHED))
                    .order_by("-created_at", "-id").first())
        if existing is not None:
            return existing
        export = DeidExport.objects.create(organization_id=study.organization_id, study=study, created_by=by,
                                           pseudonym=pseudonym,
                                           files_total=Instance.objects.filter(study=study).count())
        record(action=audit_actions.DEID_EXPORT_STARTED, actor=by, organization_id=study.organization_id,
               target=export, case=study.case, study=study, request=request,
               details={"export": str(export.public_id)})
        if enqueue:
            send_on_commit(deid_export_task, export.pk)
    return export


# ----------------------------------------------------------------------------- the run

def _ordered_instances(study: Study) -> list[Instance]:
    return list(Instance.objects.filter(study=study).select_related("series", "blob")
                .order_by("series__series_number", "series_id", "instance_number", "id"))


def _paths(instances: list[Instance]) -> dict[int, str]:
    """Each instance's place in the package (the packages' standard layout,
    ``S<series number>_<modality>/IM<position>.dcm``), by position in its series (stable across
    re-runs, excluded instances leave a gap)."""
    from apps.renditions.packages import SeriesLayout

    layout = SeriesLayout()
    return {inst.pk: layout.place(inst, "dcm") for inst in instances}


def _one(inst: Instance, export: DeidExport, key: bytes, path: str) -> dict:
    """The fields of one file row: the de-identified copy stored as a new blob, or the reason.
    An original whose stored bytes were altered (its integrity check failing, ``InvalidTag``,
    which the profile's reading turns into "unreadable") is excluded as such
    (``Reason.INTEGRITY_FAILED``, not "could not be read as DICOM"), logged as an error and
    recorded for the security officer (``blob.integrity_failed``, once: a re-run skips the
    instances that have a row); the export goes on with the other files, as for any excluded one."""
    try:
        with open_blob(inst.blob) as fh:
            output = deidentify_file(fh, pseudonym=export.pseudonym, key=key)
    except Excluded as exc:
        if isinstance(exc.__cause__, STORAGE_ERRORS):
            # the stored original could not be read (storage unreachable, disk error), not a bad
            # file: the task retries, and fails the export if it gives up, rather than leave the
            # image out of a "ready" export as unreadable
            raise exc.__cause__ from None
        if isinstance(exc.__cause__, InvalidTag):
            return _altered(inst, export)
        return {"outcome": Outcome.EXCLUDED, "reason": exc.reason}
    except InvalidTag:
        return _altered(inst, export)
    return {"outcome": Outcome.EXPORTED, "path": path, **content_fields(output.data)}


def _altered(inst: Instance, export: DeidExport) -> dict:
    """An original whose stored bytes were altered: recorded (``blob.integrity_failed``, read
    ``deid_export``, on behalf of who started the export) and excluded with that reason."""
    blob_integrity_failed(instance=inst, read="deid_export", actor=export.created_by,
                          details={"export": str(export.public_id)})
    return {"outcome": Outcome.EXCLUDED, "reason": Reason.INTEGRITY_FAILED}


def _record_failure(export: DeidExport, details: dict[str, str]) -> None:
    """``deid.export_failed`` for an export just marked failed (by its starter, with the kind of
    failure only)."""
    study = export.study
    record(action=audit_actions.DEID_EXPORT_FAILED, actor=export.created_by, organization_id=export.organization_id,
           target=export, case=study.case, study=study, outcome="failed",
           details={"export": str(export.public_id), **details})


def _fail(export: DeidExport, reason: str, code: str) -> DeidExport:
    """Mark the export failed with ``reason`` (shown) and record it once, by ``code``."""
    with transaction.atomic():
        failed = DeidExport.objects.filter(pk=export.pk).exclude(state__in=[State.READY, State.FAILED]).update(
            state=State.FAILED, **i18n.explained(reason), finished_at=timezone.now())
        if failed:
            _record_failure(export, {"reason": code})
    export.refresh_from_db()
    return export


def deid_export_fail(*, export_id: int, error: BaseException) -> None:
    """Mark an unfinished export failed after an error the run could not handle (the type name
    only: messages may quote file content)."""
    logger.warning("deid: export %s failed (%s)", export_id, type(error).__name__)
    # in words (the type is logged above and kept in the audit event's details, for the team that runs the portal)
    reason = Deferred(gettext_noop("The export stopped on an unexpected error (recorded in the portal's log). "
                                   "Start it again; if it stops again, tell your administrator."))
    with transaction.atomic():
        failed = DeidExport.objects.filter(pk=export_id, state__in=[State.QUEUED, State.RUNNING]).update(
            state=State.FAILED, **i18n.explained(reason), finished_at=timezone.now())
        if failed:
            export = DeidExport.objects.select_related("study", "study__case", "created_by").get(pk=export_id)
            _record_failure(export, {"reason": "error", "error": type(error).__name__})


def deid_export_run(*, export_id: int) -> DeidExport:
    """De-identify every instance of the export's study that has no file row yet, then mark the
    export ready (recorded once). Safe to run any number of times."""
    export = DeidExport.objects.select_related("study", "study__case", "created_by").get(pk=export_id)
    if export.is_finished:
        return export
    DeidExport.objects.filter(pk=export.pk, state=State.QUEUED).update(state=State.RUNNING, started_at=timezone.now())
    study = export.study
    if not study.is_ready:
        return _fail(export, Deferred(gettext_noop("The study is not ready (still arriving, or its ingest failed).")),
                     "study_not_ready")
    instances = _ordered_instances(study)
    if not instances:
        return _fail(export, Deferred(gettext_noop("The study has no images to export.")), "no_images")
    paths = _paths(instances)
    DeidExport.objects.filter(pk=export.pk).update(files_total=len(instances))
    done = set(DeidExportFile.objects.filter(export=export).values_list("instance_id", flat=True))
    key = bytes(export.uid_key)
    for inst in instances:
        if inst.pk in done:
            continue
        row_with_content_create(DeidExportFile, organization_id=export.organization_id, export=export, instance=inst,
                                original_bytes=inst.size, **_one(inst, export, key, paths[inst.pk]))
        DeidExport.objects.filter(pk=export.pk).update(
            files_done=DeidExportFile.objects.filter(export=export).count())
    return _finish(export)


def _finish(export: DeidExport) -> DeidExport:
    totals = DeidExportFile.objects.filter(export=export).aggregate(
        done=Count("id"), exported=Count("id", filter=Q(outcome=Outcome.EXPORTED)),
        excluded=Count("id", filter=Q(outcome=Outcome.EXCLUDED)),
        nbytes=Sum("bytes", filter=Q(outcome=Outcome.EXPORTED)))
    values = {"files_done": totals["done"], "files_exported": totals["exported"],
              "files_excluded": totals["excluded"], "bytes": totals["nbytes"] or 0}
    with transaction.atomic():
        claimed = DeidExport.objects.filter(pk=export.pk, state=State.RUNNING).update(
            state=State.READY, finished_at=timezone.now(), **values)
        if claimed:
            study = export.study
            record(action=audit_actions.DEID_EXPORTED, actor=export.created_by,
                   organization_id=export.organization_id, target=export, case=study.case, study=study,
                   details={"export": str(export.public_id), "profile": "PS3.15 E.1-1 basic",
                            "files_total": export.files_total or totals["done"], "files_exported": values[
                                "files_exported"], "files_excluded": values["files_excluded"],
                            "bytes": values["bytes"]})
    export.refresh_from_db()
    return export


def study_export_blob_ids(*, study: Study) -> set[int]:
    """The blobs of a study's de-identified files (for ``apps.imaging.services.study_delete``,
    which removes those no row points at once the study and its exports are gone)."""
    return set(DeidExportFile.objects.filter(export__study=study, blob__isnull=False).values_list("blob_id", flat=True))


# ----------------------------------------------------------------------------- the package

def deid_export_package(export: DeidExport):
    """The export's zip (apps.renditions.packages, the one zip writer): the de-identified files
    and MANIFEST.txt (labels, sha256, sizes, and what was excluded and why), written in the
    asker's language (the request's), as a study's download's.

    The name follows the package convention with ``_DeID``, dated by the day the export was made
    rather than the study date: the profile removes dates, so the name does not put one back
    (``2026-11-25_CT-Chest_V1_DeID``); the zip entries are dated when the export was made too."""
    from apps.renditions.packages import Entry, Package, later, package_finish, package_name

    study = export.study
    # an unsaved stand-in for the study, without its date, for the name and the manifest
    named = Study(organization_id=study.organization_id, modalities=study.modalities, study_date=None,
                  body_part_examined=study.body_part_examined, version=study.version,
                  created_at=export.finished_at or export.created_at)
    body = set(study.series.exclude(body_part_examined="").values_list("body_part_examined", flat=True))
    made = timezone.localdate(export.finished_at or export.created_at)
    name = package_name([named], body_parts=body, deidentified=True, dated=made)
    files = list(export.files.select_related("instance", "blob").order_by("path", "instance__instance_number", "id"))
    # lazy texts: the manifest is written in the asker's language (``package_finish``), as a
    # study's download's, with the same words; its values (paths, sha256s, sizes) are as they are
    entries = [Entry(path=f"{name}/{f.path}", size=f.bytes, crc32=f.crc32 or 0, sha256=f.sha256, label=LABEL,
                     blob=f.blob, code="deidentified", instance=f.instance)
               for f in files if f.outcome == Outcome.EXPORTED]
    missing = [(later(lambda number=f.instance.instance_number if f.instance.instance_number is not None else i:
                      _("%(folder)s image %(number)s") % {"folder": name, "number": number}),
                Reason(f.reason).label if f.reason else "")
               for i, f in enumerate(files, 1) if f.outcome == Outcome.EXCLUDED]
    package = Package(name=name, label=LABEL, entries=entries, missing=missing, deidentified=True)
    what = later(lambda: _("Study, %(rendition)s") % {"rendition": LABEL})
    return package_finish(package, what=what, studies=[named])
