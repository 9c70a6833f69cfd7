"""``manage.py ingest PATH --org SLUG [--case ID]``: ingest a folder tree, a zip, a DICOMDIR or
single files from the server's disk, with a progress bar. ``--resume JOB`` finishes an
interrupted job (what the task's retry does)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.cases.models import Case
from apps.imaging.models import IngestJob
from apps.imaging.services import ingest_job_create, ingest_job_run
from apps.organizations.models import Organization


def _count(path: Path) -> int:
    if path.is_dir():
        return sum(1 for p in path.rglob("*") if p.is_file())
    return 0


class Command(BaseCommand):
    help = "Ingest DICOM files (folder, zip, DICOMDIR or a file) into an organization."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", help="folders, zips, DICOMDIR files or DICOM files")
        parser.add_argument("--org", help="organization short name (slug)")
        parser.add_argument("--case", help="public id of a case of that organization")
        parser.add_argument("--resume", help="public id of an interrupted ingest job to finish")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        jobs = []
        if opts["resume"]:
            jobs = [IngestJob.objects.get(public_id=opts["resume"])]
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
            for raw in opts["paths"]:
                path = Path(raw).resolve()
                if not path.exists():
                    raise CommandError(f"{raw}: not found")
                jobs.append(ingest_job_create(organization=org, source_path=str(path), case=case, enqueue=False))
        for job in jobs:
            total = _count(Path(job.source_path)) if job.source_path else 0
            self.stdout.write(f"ingest job {job.public_id}")
            job = ingest_job_run(job_id=job.pk, progress=None if opts["no_progress"] else self._bar(total))
            if not opts["no_progress"]:
                sys.stderr.write("\n")
            self.stdout.write(
                f"{job.state}: {job.files_ingested} ingested, {job.files_duplicate} duplicate, "
                f"{job.files_skipped} skipped, {job.bytes_stored / 1e6:.1f} MB stored")
            for line in job.files.exclude(reason=""):
                self.stdout.write(f"  {line.path}: {line.get_outcome_display()}: {line.reason}")

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
