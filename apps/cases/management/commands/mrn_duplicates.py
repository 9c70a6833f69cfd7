"""``manage.py mrn_duplicates [--org SLUG] [--record]``: the patients whose MRN a migration renamed.

Migrations cases 0004 (one MRN whatever the case of its letters) and 0005 (MRNs folded by
Python's ``mrn_key``) kept both patients of an organization entered with what became one MRN,
with their cases: the first entered kept the MRN, each later one got "<mrn> (duplicate <id>)".
Neither merged them, and neither recorded the rename in the audit trail. This lists each renamed
patient with the patient that kept the MRN, by public id, and the addresses of their cases,
where the organization's staff see who they are and decide (the same person: move the cases;
two people: correct the MRN). It prints no MRN, name or birth date: its output may reach a log.
With ``--record``, each rename not recorded yet is recorded in its organization's audit trail
(``patient.mrn_renamed``, by the system, dated when recorded: ``services.mrn_duplicates_record``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from apps.cases import selectors, services
from apps.organizations.models import Organization


def _cases(patient) -> str:
    paths = [reverse("cases:case_detail", kwargs={"case_id": public_id})
             for public_id in patient.cases.order_by("created_at", "id").values_list("public_id", flat=True)]
    return ", ".join(paths) or "no case"


class Command(BaseCommand):
    help = ("List the patients whose MRN a migration renamed '<mrn> (duplicate <id>)' (it was one MRN with "
            "an earlier patient's), with the patient that kept it and their cases, by public id only.")

    def add_arguments(self, parser):
        parser.add_argument("--org", help="only this organization (its short name)")
        parser.add_argument("--record", action="store_true",
                            help="record each rename not recorded yet in its organization's audit trail")

    def handle(self, *args, **options):
        organization_id = None
        if options["org"]:
            organization = Organization.objects.filter(slug=options["org"]).first()
            if organization is None:
                raise CommandError(f"no organization {options['org']!r}")
            organization_id = organization.pk
        duplicates = selectors.mrn_duplicates(organization_id=organization_id)
        for found in duplicates:
            patient, kept_by = found.patient, found.kept_by
            self.stdout.write(f"{patient.organization.slug}: patient {patient.public_id} (cases: {_cases(patient)})")
            if kept_by is None:
                self.stdout.write("  the patient that kept its MRN is no longer found by it")
            else:
                self.stdout.write(f"  one MRN with patient {kept_by.public_id} (cases: {_cases(kept_by)})")
        self.stdout.write(f"{len(duplicates)} patient(s) renamed as duplicates")
        if options["record"]:
            recorded = services.mrn_duplicates_record(duplicates=duplicates)
            self.stdout.write(f"{recorded} rename(s) recorded in the audit trail "
                              f"({len(duplicates) - recorded} recorded before)")
