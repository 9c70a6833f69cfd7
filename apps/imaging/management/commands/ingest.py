"""``manage.py ingest PATH --org SLUG [--case ID]``: ingest a folder tree, a zip, a DICOMDIR or
single files from the server's disk, with a progress bar. ``--resume JOB`` finishes an
interrupted job (what the task's retry does); an upload's job only while its staged file is kept
(``LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS`` after the job failed), after which it says the file is gone.

What reaches the terminal (and whatever records it: a scrollback, a cron mail, a CI log) holds no
patient data. File names of DICOM exports often carry the patient's name, so the per-file report
names a file by its position in the job's report (the order the files were read, as the portal's
report lists them) unless ``--show-paths`` is given; reasons are the ingest's own texts, which
never quote a header value; DICOM header values (patient name, IDs) are never printed.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.cases.models import Case
from apps.imaging.models import FileOutcome, IngestJob, JobState
from apps.imaging.services import UploadDiscarded, ingest_job_create, ingest_job_fail, ingest_job_run
from apps.organizations.models import Organization


def _count(path: Path) -> int:
    if path.is_dir():
        return sum(1 for p in path.rglob("*") if p.is_file())
    return 0


def _not_run(later: list[str]) -> str:
    """The paths after the one that stopped the command: not ingested (no job was made for them)."""
    return f"; not ingested (no job made): {', '.join(later)}" if later else ""


class Command(BaseCommand):
    help = "Ingest DICOM files (folder, zip, DICOMDIR or a file) into an organization."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", help="folders, zips, DICOMDIR files or DICOM files")
        parser.add_argument("--org", help="organization short name (slug)")
        parser.add_argument("--case", help="public id of a case of that organization")
        parser.add_argument("--resume", help="public id of an interrupted ingest job to finish")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument("--show-paths", action="store_true",
                            help="name files by their paths in the report (file names may carry patient names)")

    def handle(self, *args, **opts):
        targets: list[IngestJob | Path] = []  # a job to resume, or paths whose jobs are made as each runs
        if opts["resume"]:
            targets = [IngestJob.objects.get(public_id=opts["resume"])]
        else:
            if not opts["paths"] or not opts["org"]:
                raise CommandError("give PATH and --org SLUG (or --resume JOB)")
            try:
                org = Organization.objects.get(slug=opts["org"])
            except Organization.DoesNotExist:
                raise CommandError(f"no organization {opts['org']!r}") from None
            case = None
            if opts["case"]:
                case = Case.objects.for_org(org.pk).filter(public_id=opts["case"]).first()
                if case is None:
                    raise CommandError("no such case in that organization")
            paths = [Path(raw).resolve() for raw in opts["paths"]]
            for n, (raw, path) in enumerate(zip(opts["paths"], paths, strict=True), 1):
                if not path.exists():  # checked for all before any job is made
                    raise CommandError(f"{raw}: not found" if opts["show_paths"] else f"PATH {n}: not found")
            targets = list(paths)
        for n, target in enumerate(targets, 1):
            # a path's job is made just before it runs: one that an earlier path's failure stops is
            # never made (no sweep fails a queued command job: it would wait for ever), only named
            job = target if isinstance(target, IngestJob) else ingest_job_create(
                organization=org, source_path=str(target), case=case, enqueue=False)
            later = [raw if opts["show_paths"] else f"PATH {i}"
                     for i, raw in enumerate(opts["paths"], 1) if i > n] if not opts["resume"] else []
            total = _count(Path(job.source_path)) if job.source_path else 0
            self.stdout.write(f"ingest job {job.public_id}")
            lease = f"resume-{uuid.uuid4().hex}"
            try:
                job = ingest_job_run(job_id=job.pk, progress=None if opts["no_progress"] else self._bar(total),
                                     lease=lease)
            except UploadDiscarded as exc:  # kept so long after the failure, then discarded: say so
                raise CommandError(str(exc)) from None
            except BaseException as exc:  # noqa: BLE001 - Ctrl-C too: the job is never left running
                raise self._failed(job, exc, lease, later) from None
            if not opts["no_progress"]:
                sys.stderr.write("\n")
            if job.state not in (JobState.DONE, JobState.DONE_WITH_WARNINGS):
                # the run lost its job: the lost-job sweep failed it, or a --resume took it over
                raise CommandError(f"ingest job {job.public_id} was taken from this run ({job.state}: failed by the "
                                   f"lost-job sweep, or taken over by another run); what it stored is kept: manage.py "
                                   f"ingest --resume {job.public_id} finishes it" + _not_run(later))
            self.stdout.write(
                f"{job.state}: {job.files_ingested} ingested, {job.files_duplicate} duplicate, "
                f"{job.files_skipped} skipped, {job.bytes_stored / 1e6:.1f} MB stored")
            self._report(job, show_paths=opts["show_paths"])

    @staticmethod
    def _failed(job: IngestJob, exc: BaseException, lease: str, later: list[str]) -> CommandError:
        """The run raised (or was interrupted): the job is failed, as the task fails one it gives
        up on (its studies never left processing), unless another run took it over meanwhile.
        Said with the error's type and the job only: the message, and the traceback, may quote a
        path that names the patient."""
        error = type(exc).__name__
        ingest_job_fail(job_id=job.pk, error=error, task_id=lease)
        if isinstance(exc, KeyboardInterrupt):
            what = "interrupted"
        else:
            what = f"stopped by an error ({error})"
        return CommandError(f"ingest job {job.public_id} {what} and marked failed; what it stored is kept: "
                            f"manage.py ingest --resume {job.public_id} finishes it" + _not_run(later))

    def _report(self, job: IngestJob, *, show_paths: bool) -> None:
        """A line per file with a reason: its position in the job's report (or its path), outcome
        and reason, in English (i18n.Deferred keeps the English of each reason)."""
        outcomes = dict(FileOutcome.choices)
        hidden = 0
        lines = job.files.order_by("id").values_list("path" if show_paths else "id", "outcome", "reason")
        for position, (name, outcome, reason) in enumerate(lines.iterator(chunk_size=2000), 1):
            if not reason:
                continue
            if not show_paths:
                name, hidden = f"file {position}", hidden + 1
            self.stdout.write(f"  {name}: {outcomes.get(outcome, outcome)}: {reason}")
        if hidden:
            self.stdout.write("  (files numbered in the order read, as the job's report in the portal lists them; "
                              "file names may carry patient names: --show-paths prints them)")

    @staticmethod
    def _bar(total: int):
        start = time.monotonic()

        def show(files: int, nbytes: int) -> None:
            rate = nbytes / 1e6 / max(1e-6, time.monotonic() - start)
            if total:
                filled = int(30 * min(files, total) / total)
                sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {files}/{total} files {rate:.1f} MB/s")
            else:
                sys.stderr.write(f"\r{files} files {rate:.1f} MB/s")
            sys.stderr.flush()

        return show
