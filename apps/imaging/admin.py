from __future__ import annotations

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.imaging.models import IngestJob, Study


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    """A study is deleted through imaging.services.study_delete (audited, removes its blobs)."""

    list_display = ("public_id", "organization", "version", "state", "num_instances", "created_at")
    list_filter = ("state",)


@admin.register(IngestJob)
class IngestJobAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "organization", "state", "files_total", "files_ingested", "created_at")
    list_filter = ("state",)
