"""Reads for the imaging pages: every row through ``visible_to`` (404 to outsiders)."""

from __future__ import annotations

from uuid import UUID

from django.http import Http404

from apps.imaging.models import IngestJob, Study


def study_get(*, user, public_id: UUID) -> Study:
    try:
        return Study.objects.visible_to(user).select_related("organization", "case").get(public_id=public_id)
    except Study.DoesNotExist:
        raise Http404 from None


def study_series(*, study: Study):
    """The study's series in order (number, then arrival); a query to page through, not a list."""
    return study.series.order_by("series_number", "id")


def study_jobs(*, user, study: Study):
    """Ingest jobs that touched this study, with their per-file report lines for it."""
    return (IngestJob.objects.visible_to(user).filter(studies=study).order_by("-created_at")
            .prefetch_related("files"))


def recent_uploads(*, user, organization, limit: int = 10):
    return (IngestJob.objects.visible_to(user).filter(organization=organization, created_by=user)
            .select_related("upload").prefetch_related("studies").order_by("-created_at")[:limit])
