from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods

from apps.accounts import mfa
from apps.accounts.mfa import asks_step_up, step_up_first
from apps.audit import actions as audit_actions
from apps.audit.services import record, record_hidden_refusal
from apps.cases.models import Case
from apps.core.pagination import page_of
from apps.imaging import selectors, services
from apps.imaging.forms import StudyAttachForm
from apps.imaging.models import IngestJob, Study
from apps.organizations.switching import switch_first
from apps.sharing import policy
from apps.sharing.policy import Action
from apps.viewer import selectors as viewer_selectors

#: series per page of the study page (a CT or MR seldom has more; some have hundreds)
SERIES_PAGE_SIZE = 100
#: the user's uploads per page of the upload page ("Your recent uploads")
RECENT_UPLOADS_PAGE_SIZE = 10
#: the organization's studies in no case per page of the upload page ("Studies in no case")
NO_CASE_PAGE_SIZE = 10


@login_required
@policy.serves(Action.VIEW_CASE)
def study_detail(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """A study's metadata, series, state, warnings and the per-file report of its ingests
    (recorded as viewed, as the case page is)."""
    study = selectors.study_get(user=request.user, public_id=study_id, request=request)
    # another of the person's organizations' study: shown, with its actions, once it is the active one
    if (switch := switch_first(request, study, Action.DELETE_STUDY, then=request.get_full_path())) is not None:
        return switch
    may = selectors.study_page_decisions(user=request.user, actor=policy.actor_for(request), study=study,
                                         request=request)
    policy.require_decided(may[Action.VIEW_CASE], request.user, Action.VIEW_CASE, study, request=request)
    record(action=audit_actions.STUDY_VIEWED, actor=request.user, organization_id=study.organization_id,
           target=study, request=request)
    # a study may hold hundreds of series: a page of them, with "Showing N of M" and the others' pages
    series = page_of(request, selectors.study_series(study=study), size=SERIES_PAGE_SIZE)
    jobs, lines_page, ingests_page = [], None, None
    facts = policy.request_facts(request, request.user)
    may_upload = policy.can(request.user, Action.UPLOAD_STUDY, study.organization, facts=facts)
    # uploaded with no case ("attach later"): the open cases it may go into (?case=<id> chosen, as
    # the upload page takes it, whatever its age), or why there are none; none while an ingest
    # still adds to it, which the attach would refuse
    may_attach = may_upload and study.case_id is None
    attach_busy = may_attach and selectors.attach_waits_for_ingest(study=study)
    attach_cases, attach_case_total, attach_chosen = None, 0, request.GET.get("case", "")
    if may_attach and not attach_busy:
        attach_cases, attach_case_total = selectors.upload_case_choices(
            user=request.user, organization=study.organization, chosen=attach_chosen, facts=facts)
    # the attach asks for a recent second factor (study_attach's step-up): said before, and whether
    # one must be set up first, so that the step-up or enrolment page is no surprise
    attach_step_up = bool(attach_cases) and mfa.step_up_needed(request)
    attach_enrol_first = attach_step_up and not mfa.has_second_factor(request.user)
    if may_upload:
        # ?report=<ingest>: that ingest's whole report, a page at a time; else the latest ingests'
        one = selectors.study_job_report(user=request.user, study=study, job_id=request.GET.get("report", ""))
        if one is not None:
            job, lines = one
            lines_page = page_of(request, lines, size=selectors.REPORT_LINES, param="lines")
            jobs = [selectors.JobReport(job=job, lines=list(lines_page), total=lines_page.paginator.count,
                                        counts=selectors.study_job_counts(study=study, job=job))]
        else:  # the latest ingests, REPORT_JOBS a page (?ingests=N for the older ones)
            ingests_page = page_of(request, selectors.study_jobs(user=request.user, study=study),
                                   size=selectors.REPORT_JOBS, param="ingests")
            jobs = selectors.study_job_reports(study=study, jobs=ingests_page)
    return render(request, "imaging/study_detail.html", {
        "study": study, "series": series, "jobs": jobs, "lines_page": lines_page, "ingests_page": ingests_page,
        "show_patient": may[Action.VIEW_PATIENT_IDENTITY], "may_delete": may[Action.DELETE_STUDY],
        # "View" once the viewer shows it (its ingest ended with its images stored), as the case page
        "can_view": may[Action.VIEW_IMAGES] and viewer_selectors.viewer_opens(study=study),
        "may_share": may[Action.SHARE_CASE],
        "may_export": may[Action.EXPORT_DEIDENTIFIED], "may_attach": may_attach, "attach_busy": attach_busy,
        "attach_cases": attach_cases, "attach_case_total": attach_case_total, "attach_chosen": attach_chosen,
        "attach_step_up": attach_step_up, "attach_enrol_first": attach_enrol_first,
        "case_limit": selectors.UPLOAD_CASE_CHOICES,
        "versions": study.__class__.objects.visible_to(request.user).filter(
            organization=study.organization, study_instance_uid=study.study_instance_uid).order_by("version"),
    })


@login_required
@require_http_methods(["GET", "POST"])
@policy.serves(Action.DELETE_STUDY)
@asks_step_up()  # a deletion cannot be undone: a recent second factor, as for sharing (after the switch page)
def study_delete(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """GET: what deleting this study version removes, and the button. POST (CSRF-checked):
    delete it through ``services.study_delete`` (which asks the policy itself), then back to its
    case (or the study list) with a message. A study an ingest is still filling is refused with
    its reason on the study page."""
    from apps.deid.models import DeidExport
    from apps.renditions.models import Rendition

    study = selectors.study_get(user=request.user, public_id=study_id, request=request)  # 404 to others
    if (switch := switch_first(request, study, Action.DELETE_STUDY, then=request.path)) is not None:
        return switch  # before the step-up: nothing is deleted from that page
    policy.require(request.user, Action.DELETE_STUDY, study, request=request)
    if (asked := step_up_first(request, organization_id=study.organization_id)) is not None:
        return asked
    if request.method == "POST":
        try:
            services.study_delete(study=study, by=request.user, request=request)
        except services.StudyBusy as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("imaging:study_detail", study_id=study.public_id)
        except Study.DoesNotExist:  # deleted by another request since it was read (a double click)
            raise Http404 from None
        messages.success(request, _("The study was deleted."))
        if study.case_id is not None:
            return redirect("cases:case_detail", case_id=study.case.public_id)
        return redirect("cases:case_list")
    renditions = Rendition.objects.filter(study=study)
    return render(request, "imaging/study_delete.html", {
        "study": study,
        "renditions": renditions.count(),
        "rendition_bytes": renditions.aggregate(n=Sum("bytes"))["n"] or 0,
        "exports": DeidExport.objects.filter(study=study).count(),
        "other_versions": study.__class__.objects.for_org(study.organization_id).filter(
            study_instance_uid=study.study_instance_uid).exclude(pk=study.pk).count(),
    })


@login_required
@require_http_methods(["GET", "POST"])
@policy.serves(Action.UPLOAD_STUDY)
# a case shared as a whole shares the study with its recipients: as for sharing (the step-up and
# enrolment pages say why; the study page's Attach section says so before), after the switch page
@asks_step_up(why=gettext_lazy("Attaching a study to a case asks for your second factor: the case's shares "
                               "and tumor boards then reach the study."))
def study_attach(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """Attach a study uploaded with no case ("attach later") to a case. GET ?case=<id> (the
    study page's choice): whom the case's shares on the whole case and its tumor boards will then
    reach, and the button; when the patient ID in the images is not the case's MRN, a box the user
    must tick before a danger button (a POST without it is refused, nothing attached, the page
    again at 400 saying why). POST (CSRF-checked): attach it through ``services.study_attach`` (which asks the
    policy itself, and refuses another patient's images under its locks unless the box was ticked: a
    version made since the form was checked brings the page back with the box), then back to the study
    page with a message. A case it cannot go into (a
    garbled id, a closed case, another organization's) and a study in a case already are told
    there, never a 500."""
    study = selectors.study_get(user=request.user, public_id=study_id, request=request)  # 404 to others
    then = request.get_full_path() if request.method == "GET" else study.get_absolute_url()
    if (switch := switch_first(request, study, Action.UPLOAD_STUDY, then=then)) is not None:
        return switch  # before the step-up: nothing is attached from that page
    policy.require(request.user, Action.UPLOAD_STUDY, study.organization, request=request)
    if (asked := step_up_first(request, organization_id=study.organization_id)) is not None:
        return asked
    back = redirect("imaging:study_detail", study_id=study.public_id)
    if study.case_id is not None:
        messages.info(request, _("This study is in a case already."))
        return back
    chosen = (request.POST if request.method == "POST" else request.GET).get("case", "")
    case = selectors.attach_case_get(user=request.user, study=study, public_id=chosen)
    if case is None:
        try:  # an id that names no case the user may upload into: recorded if the case exists
            record_hidden_refusal(user=request.user, model=Case, public_id=UUID(str(chosen)), request=request,
                                  wanted=Action.UPLOAD_STUDY.value)
        except ValueError:
            pass  # not an id at all
        messages.error(request, _("Choose an open case you may upload studies into."))
        return back
    # another patient's images: attached only once the user ticks that they checked (the form)
    form = StudyAttachForm(request.POST if request.method == "POST" else None, study=study, case=case)
    if request.method == "POST" and form.is_valid():
        try:
            attached = services.study_attach(study=study, case=case, by=request.user, request=request,
                                             patient_confirmed=form.cleaned_data.get("patient_checked", False))
        except ValidationError as exc:  # in a case meanwhile (a second submit), or an ingest still running
            if getattr(exc, "code", None) == "patient_unconfirmed":
                # another patient's images since the form was checked (a version made meanwhile, seen
                # under the service's lock): the confirmation again, its box to tick and why (the form
                # decides afresh; one that sees them no more is told the service's reason)
                form = StudyAttachForm(request.POST, study=study, case=case)
                if not form.is_valid():
                    return _attach_confirmation(request, study=study, case=case, form=form, status=400)
            messages.error(request, " ".join(exc.messages))
            return back
        except Study.DoesNotExist:  # deleted by another request since it was read
            raise Http404 from None
        if len(attached) > 1:
            messages.success(request, _("The study was attached to the case, with its other versions: "
                                        "%(n)d versions in all.") % {"n": len(attached)})
        else:
            messages.success(request, _("The study was attached to the case."))
        return back
    return _attach_confirmation(request, study=study, case=case, form=form,
                                status=400 if form.is_bound else 200)


def _attach_confirmation(request: HttpRequest, *, study: Study, case: Case, form: StudyAttachForm,
                         status: int) -> HttpResponse:
    """The attach confirmation: whom the study then reaches, both patients, and the button (a
    danger one, after a box to tick, when the patients differ)."""
    show_patient = policy.can(request.user, Action.VIEW_PATIENT_IDENTITY, study.organization,
                              facts=policy.request_facts(request, request.user))
    return render(request, "imaging/study_attach.html", {
        "study": study, "case": case,
        # the shares on the whole case (each with what it gives its holder, not the permissions it
        # names) and its tumor boards, whose participants see its studies too (live, or once started)
        "reach": selectors.case_reach(user=request.user, case=case),
        # whose images these are, beside the case's patient, so that a wrong case is seen before
        # the images reach the case's shares (an attach is not undone from the portal)
        "show_patient": show_patient,
        "patient_differs": form.patient_differs, "patient_id_missing": form.patient_id_missing, "form": form,
        "other_versions": study.__class__.objects.for_org(study.organization_id).filter(
            study_instance_uid=study.study_instance_uid, case__isnull=True).exclude(pk=study.pk).count(),
    }, status=status)


@login_required
def upload_page(request: HttpRequest) -> HttpResponse:
    """Drag and drop files, a folder or a zip; resumable (tus-js-client). Below: the user's
    recent uploads, and the organization's studies in no case (whoever uploaded them), each
    leading to its page's Attach to a case."""
    org = request.organization
    if org is None:
        raise PermissionDenied
    # the page only reads: its decisions share the memberships the request read (request_facts)
    facts = policy.request_facts(request, request.user)
    policy.require(request.user, Action.UPLOAD_STUDY, org, request=request, facts=facts)
    preselected = request.GET.get("case", "")
    cases, case_total = selectors.upload_case_choices(user=request.user, organization=org, chosen=preselected,
                                                      facts=facts)
    chosen_case = next((c for c in cases if str(c.public_id) == preselected), None)
    return render(request, "imaging/upload.html", {
        "cases": cases, "case_total": case_total, "case_limit": selectors.UPLOAD_CASE_CHOICES,
        "chunk_bytes": settings.LIGHTBOX_UPLOAD_CHUNK_BYTES,
        "preselected": preselected,
        # chosen from a case's page: the studies in no case below lead to their Attach with it chosen
        "chosen_case": chosen_case,
        # whom a study uploaded into it reaches, said under the case's box (another case chosen on
        # the page: upload_case_reach)
        "reach": selectors.case_reach(user=request.user, case=chosen_case) if chosen_case else None,
        "recent": page_of(request, selectors.recent_uploads(user=request.user, organization=org),
                          size=RECENT_UPLOADS_PAGE_SIZE, param="uploads"),
        # the organization's studies uploaded with no case, by anyone: found here to be attached
        "no_case": page_of(request, selectors.studies_in_no_case(user=request.user, organization=org),
                           size=NO_CASE_PAGE_SIZE, param="no_case"),
        "show_patient": policy.can(request.user, Action.VIEW_PATIENT_IDENTITY, org, facts=facts),
        "max_bytes": org.upload_max_bytes,
    })


@login_required
@require_http_methods(["GET"])
def upload_case_reach(request: HttpRequest) -> HttpResponse:
    """GET ?case=<id>: whom a study uploaded into that case reaches beyond the staff (its shares on
    the whole case, its tumor boards), the attach page's words (``imaging/_case_reach.html``), for
    the upload page to show under its case box when the choice changes (found by QA: a study
    uploaded into a shared case reached its patient and consultants with no word before). For a
    case the user may upload into (``selectors.upload_case_get``, as the tus server's check); any
    other id is 404, the probe of a case that exists recorded, as the attach page does. No case:
    an empty answer."""
    org = request.organization
    if org is None:
        raise PermissionDenied
    policy.require(request.user, Action.UPLOAD_STUDY, org, request=request)
    chosen = request.GET.get("case", "")
    if not chosen:
        return HttpResponse("")
    case = selectors.upload_case_get(user=request.user, organization=org, public_id=chosen)
    if case is None:
        try:  # an id that names no case the user may upload into: recorded if the case exists
            record_hidden_refusal(user=request.user, model=Case, public_id=UUID(chosen), request=request,
                                  wanted=Action.UPLOAD_STUDY.value)
        except ValueError:
            pass  # not an id at all
        raise Http404
    return render(request, "imaging/_case_reach.html", {
        "case": case, "uploading": True, "reach": selectors.case_reach(user=request.user, case=case)})


#: the session's key listing the uploads whose states this browser session has read (recorded once
#: each: the upload page asks every few seconds), the last UPLOAD_STATES_SEEN_MAX of them
UPLOAD_STATES_SEEN_KEY = "imaging_upload_states_seen"
UPLOAD_STATES_SEEN_MAX = 100


def _upload_states_recorded(request: HttpRequest, jobs: list[IngestJob]) -> None:
    """The states of an upload and of its studies read (``upload_report.viewed``, the ingest job
    its target), once per browser session and upload, as its status is (apps.imaging.tus)."""
    seen = request.session.get(UPLOAD_STATES_SEEN_KEY, [])
    new = [job for job in jobs if str(job.public_id) not in seen]
    for job in new:
        record(action=audit_actions.UPLOAD_REPORT_VIEWED, actor=request.user, organization_id=job.organization_id,
               target=job, request=request)
    if new:
        request.session[UPLOAD_STATES_SEEN_KEY] = [*seen, *(str(job.public_id) for job in new)][
            -UPLOAD_STATES_SEEN_MAX:]


def _states_refused(status: int, message: str) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


@login_required
@require_http_methods(["GET"])
def upload_states(request: HttpRequest) -> HttpResponse:
    """GET ?job=<id>[&job=<id>...]: the current state of the user's own uploads (ingest jobs, at
    most ``selectors.UPLOAD_STATES_MAX``) into the active organization and of the studies they
    added, as JSON, for the upload page to bring "Your recent uploads" up to date while one of its
    lines names a study still receiving or processing, or an upload still queued or running (a
    file's ingest ended while the next file's added to its study). States, their labels in the
    reader's language and the studies' addresses and numbers of images: no name, no description,
    no file name. For whoever may upload there (the policy, as the page asks); 404 unless every
    upload named is the user's own there. Recorded once per session and upload
    (``upload_report.viewed``), as the upload's status is."""
    org = request.organization
    if org is None:
        raise PermissionDenied
    policy.require(request.user, Action.UPLOAD_STUDY, org, request=request)
    named = request.GET.getlist("job")
    if not named:
        return _states_refused(400, _("Name at least one upload."))
    if len(set(named)) > selectors.UPLOAD_STATES_MAX:
        return _states_refused(400, _("Ask about %(max)s uploads at most at once.")
                               % {"max": selectors.UPLOAD_STATES_MAX})
    try:
        public_ids = {UUID(value) for value in named}
    except ValueError:
        raise Http404 from None  # not an id: it names no upload
    jobs, studies = selectors.upload_states_get(user=request.user, organization=org, public_ids=public_ids,
                                                request=request)
    _upload_states_recorded(request, jobs)
    return JsonResponse({
        "jobs": [{"id": str(job.public_id), "state": job.state, "outcome": job.outcome,
                  "state_label": job.outcome_label, "final": job.state not in selectors.JOB_STATES_PENDING,
                  # a failed upload says why and what can be done, as the page's line does
                  "failure": {"code": failure.code, "message": failure.message} if (failure := job.failure) else None}
                 for job in jobs],
        "studies": [{"id": str(study.public_id), "url": study.get_absolute_url(), "state": study.state,
                     "state_label": str(study.get_state_display()),
                     "final": study.state not in selectors.STUDY_STATES_PENDING,
                     # as many as it holds now (another upload may be adding to it), not its last count
                     "instances": study.images_now,
                     "instances_label": ngettext("%(n)s image", "%(n)s images", study.images_now)
                     % {"n": study.images_now}}
                    for study in studies],
    })


@login_required
@require_http_methods(["GET", "HEAD"])
@policy.serves(Action.UPLOAD_STUDY)
def upload_report(request: HttpRequest, ingestjob_id: UUID) -> HttpResponse:
    """One upload's ingest: its outcome, the studies it added and its whole per-file report
    (problems first, a page at a time), reached from "Your recent uploads". An upload that
    imported nothing (a text file, a damaged zip) has no study page to carry its reasons: here
    they stay after a reload. For whoever may upload into the job's organization, as the study
    page's report is (file names are the organization's own record); 404 to whoever cannot see
    the job or is not of its organization's staff (a grantee of one of its cases sees the job's
    case, not the job), 403 to its other staff. Each view is recorded (``upload_report.viewed``)."""
    job = selectors.upload_job_get(user=request.user, public_id=ingestjob_id, request=request)
    if (switch := switch_first(request, job, Action.UPLOAD_STUDY, then=request.get_full_path())) is not None:
        return switch
    try:
        policy.require(request.user, Action.UPLOAD_STUDY, job.organization, request=request)
    except PermissionDenied:
        if policy.role_in(request.user, job.organization_id) is None:
            raise Http404 from None  # the refusal is recorded already
        raise
    # its file names often name the patient: recorded as read, as the study page showing it is
    record(action=audit_actions.UPLOAD_REPORT_VIEWED, actor=request.user, organization_id=job.organization_id,
           target=job, request=request)
    return render(request, "imaging/upload_report.html", {
        "job": job,
        "lines": page_of(request, selectors.upload_job_lines(job=job), size=selectors.REPORT_LINES, param="lines"),
        "studies": selectors.upload_job_studies(user=request.user, job=job),
    })
