from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.imaging import selectors
from apps.imaging.models import FileOutcome
from apps.sharing import policy
from apps.sharing.policy import Action


@login_required
@policy.serves(Action.VIEW_CASE)
def study_detail(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """A study's metadata, series, state, warnings and the per-file report of its ingests."""
    study = selectors.study_get(user=request.user, public_id=study_id)
    policy.require(request.user, Action.VIEW_CASE, study, request=request)
    series = list(study.series.all())
    jobs = []
    can_see_report = policy.can(request.user, Action.UPLOAD_STUDY, study.organization)
    if can_see_report:
        for job in selectors.study_jobs(user=request.user, study=study)[:5]:
            lines = [f for f in job.files.all() if f.study_id == study.pk or f.outcome == FileOutcome.SKIPPED]
            jobs.append((job, lines))
    return render(request, "imaging/study_detail.html", {
        "study": study, "series": series, "jobs": jobs,
        "show_patient": policy.can(request.user, Action.VIEW_PATIENT_IDENTITY, study),
        "versions": study.__class__.objects.visible_to(request.user).filter(
            organization=study.organization, study_instance_uid=study.study_instance_uid).order_by("version"),
    })


@login_required
def upload_page(request: HttpRequest) -> HttpResponse:
    """Drag and drop files, a folder or a zip; resumable (tus-js-client)."""
    org = request.organization
    if org is None:
        raise PermissionDenied
    policy.require(request.user, Action.UPLOAD_STUDY, org, request=request)
    cases = policy.upload_cases(request.user, org).order_by("-created_at")[:200]
    return render(request, "imaging/upload.html", {
        "cases": cases, "preselected": request.GET.get("case", ""),
        "recent": selectors.recent_uploads(user=request.user, organization=org),
        "max_bytes": org.upload_max_bytes,
    })
