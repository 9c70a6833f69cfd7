from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from apps.core.admin import ReadOnlyAdmin
from apps.imaging.models import IngestJob, Study


class _CaseByIdAdmin(ReadOnlyAdmin):
    readonly_fields: tuple[str, ...] = ("case_reference",)

    @admin.display(description=_("case"))
    def case_reference(self, obj: Study | IngestJob) -> str:
        return str(obj.case.public_id) if obj.case_id else "-"


@admin.register(Study)
class StudyAdmin(_CaseByIdAdmin):
    """A study is deleted through imaging.services.study_delete (audited, removes its blobs). The
    admin shows every organization's studies to an operator: none of the patient's identity (name,
    ID, birth date, accession number, the description and the case's title, which may name them);
    a case is named by its id."""

    list_display = ("public_id", "organization", "version", "state", "num_instances", "created_at")
    list_filter = ("state",)
    exclude = ("case", "patient_id", "issuer_of_patient_id", "patient_name", "patient_birth_date",
               "accession_number", "study_description")


@admin.register(IngestJob)
class IngestJobAdmin(_CaseByIdAdmin):
    """Neither the case's title nor the path it was ingested from (a folder named after the patient)."""

    list_display = ("public_id", "organization", "state", "files_total", "files_ingested", "created_at")
    list_filter = ("state",)
    exclude = ("case", "source_path")
