from __future__ import annotations

from django.contrib import admin

from apps.imaging.models import IngestJob, Study


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("public_id", "organization", "version", "state", "num_instances", "created_at")
    list_filter = ("state",)
    readonly_fields = ("public_id",)


@admin.register(IngestJob)
class IngestJobAdmin(admin.ModelAdmin):
    list_display = ("public_id", "organization", "state", "files_total", "files_ingested", "created_at")
    list_filter = ("state",)
