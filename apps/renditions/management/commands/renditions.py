"""manage.py renditions [--org SLUG] [--study UUID]: make missing renditions now (idempotent).

For studies ingested while LIGHTBOX_RENDITIONS_AFTER_INGEST was off, or to finish interrupted runs."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.imaging.models import Study
from apps.renditions.services import study_renditions_make


class Command(BaseCommand):
    help = "Make the missing renditions of ready studies."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="organization slug")
        parser.add_argument("--study", help="study public id")

    def handle(self, *args, **options):
        studies = Study.objects.ready()
        if options["org"]:
            studies = studies.filter(organization__slug=options["org"])
        if options["study"]:
            studies = studies.filter(public_id=options["study"])
        count = 0
        for study_id in studies.values_list("pk", flat=True):
            made = study_renditions_make(study_id=study_id)
            count += 1
            summary = ", ".join(f"{k}: {r.files_ready} ready/{r.files_unavailable} not" for k, r in made.items())
            self.stdout.write(f"study {study_id}: {summary}")
        self.stdout.write(f"{count} studies")
