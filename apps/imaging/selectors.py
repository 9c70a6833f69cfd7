"""Reads for the imaging pages: every row through ``visible_to`` (404 to outsiders)."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from django.db.models import Case, Count, F, Q, Value, When, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpRequest

from apps.audit.services import record_hidden_refusal
from apps.imaging.models import FileOutcome, IngestFileResult, IngestJob, JobState, Study, StudyState
from apps.imaging.services import DUPLICATE_ELSEWHERE
from apps.sharing import policy

#: how many cases the upload page's case list offers: the newest open ones (a case's own page
#: leads to the upload page with that case chosen, whatever its age)
UPLOAD_CASE_CHOICES = 200

#: the study page's upload report: its latest ingests, and at most this many lines of each
REPORT_JOBS = 5
REPORT_LINES = 500


def study_get(*, user, public_id: UUID, request: HttpRequest | None = None) -> Study:
    """The study, for a user who may see it; else 404, and a refusal of a study that exists is
    recorded in its organization's trail (``record_hidden_refusal``, as a case's is)."""
    try:
        return Study.objects.visible_to(user).select_related("organization", "case").get(public_id=public_id)
    except Study.DoesNotExist:
        record_hidden_refusal(user=user, model=Study, public_id=public_id, request=request)
        raise Http404 from None


#: what the study page asks the policy about its study: whether it may be seen at all, and its buttons
PAGE_ACTIONS = (policy.Action.VIEW_CASE, policy.Action.VIEW_IMAGES, policy.Action.SHARE_CASE,
                policy.Action.EXPORT_DEIDENTIFIED, policy.Action.DELETE_STUDY, policy.Action.VIEW_PATIENT_IDENTITY)


def study_page_decisions(*, user, actor, study: Study, request: HttpRequest | None = None) -> dict[policy.Action, bool]:
    """The policy's answer for each of ``PAGE_ACTIONS`` on ``study``, decided at once for the
    signed-in ``user`` (their memberships and grants read once for all of them), except
    ``VIEW_IMAGES``, decided for the request's ``actor`` (``policy.actor_for``: the anonymous
    links opened in the session count for the viewer, which takes them) when that is not the user
    alone. ``SHARE_CASE`` is false for a study in no case or in a closed one. With ``request``,
    what the decisions read is the request's (``policy.request_facts``), shared with the page's
    other decisions (its navigation, its download buttons)."""
    may = policy.can_actions(user, PAGE_ACTIONS, study, facts=policy.request_facts(request, user))
    if actor is not user:
        may[policy.Action.VIEW_IMAGES] = policy.can(actor, policy.Action.VIEW_IMAGES, study,
                                                    facts=policy.request_facts(request, actor))
    if study.case is None or not study.case.is_open:
        may[policy.Action.SHARE_CASE] = False
    return may


def study_series(*, study: Study):
    """The study's series in order (number, then arrival); a query to page through, not a list."""
    return study.series.order_by("series_number", "id")


def study_jobs(*, user, study: Study):
    """Ingest jobs that touched this study, newest first."""
    return IngestJob.objects.visible_to(user).filter(studies=study).order_by("-created_at", "-id")


@dataclass(frozen=True)
class JobReport:
    job: IngestJob
    lines: list[IngestFileResult]  # the first REPORT_LINES
    total: int                      # all of them
    #: how many of them of each outcome (``FileOutcome``): the study page counts its own study's
    #: files, not the whole upload's (its lines are that study's, and the files skipped)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ingested(self) -> int:  # a changed file stored as a new version was ingested too
        return self.counts.get(FileOutcome.INGESTED, 0) + self.counts.get(FileOutcome.NEW_VERSION, 0)

    @property
    def duplicates(self) -> int:
        return self.counts.get(FileOutcome.DUPLICATE, 0)

    @property
    def skipped(self) -> int:
        return self.counts.get(FileOutcome.SKIPPED, 0)


#: how much a report line asks of its uploader, most first; a line that meets none is "ok" (a
#: file ingested with nothing to say). The study page's report, the upload's report page and the
#: upload page's live lines (the status JSON) list lines in this order, and mark each with it.
SEVERITIES = (
    # not imported
    ("problem", Q(outcome=FileOutcome.SKIPPED)),
    # imported, but not as the upload asked, or with something to check: changed (stored as a new
    # version), put into no case or another case, kept with a warning; the job ends "with warnings"
    ("warning", Q(outcome=FileOutcome.NEW_VERSION) | (Q(outcome=FileOutcome.INGESTED) & ~Q(reason=""))
     | Q(outcome=FileOutcome.DUPLICATE, reason__contains=DUPLICATE_ELSEWHERE)),
    # for information: already stored, nothing to do
    ("note", Q(outcome=FileOutcome.DUPLICATE)),
)
SEVERITY = Case(*(When(q, then=Value(name)) for name, q in SEVERITIES), default=Value("ok"))
#: a report's lines in ``SEVERITIES``' order, each in the order the files were read
PROBLEMS_FIRST = (Case(*(When(q, then=Value(rank)) for rank, (_name, q) in enumerate(SEVERITIES)),
                       default=Value(len(SEVERITIES))), "id")


def _report_lines(study: Study, jobs):
    """The report lines of ``jobs`` about ``study`` (and the files they skipped)."""
    return IngestFileResult.objects.filter(Q(study=study) | Q(outcome=FileOutcome.SKIPPED), job__in=jobs)


def _outcome_counts(lines) -> dict[int, dict[str, int]]:
    """How many of ``lines`` there are of each outcome, by job: one query."""
    counts: dict[int, dict[str, int]] = {}
    for job_id, outcome, n in (lines.order_by().values("job_id", "outcome").annotate(n=Count("id"))
                               .values_list("job_id", "outcome", "n")):
        counts.setdefault(job_id, {})[outcome] = n
    return counts


def study_job_counts(*, study: Study, job: IngestJob) -> dict[str, int]:
    """How many lines of ``job``'s report about ``study`` (and the files it skipped) there are of
    each outcome: the counts over the study page's whole report of one ingest."""
    return _outcome_counts(_report_lines(study, [job])).get(job.pk, {})


def study_job_report(*, user, study: Study, job_id: str):
    """One ingest of the study, for the study page's whole report of it: (the job, its lines
    problems first, to page through); None for an id that is no visible ingest of this study."""
    try:
        job = study_jobs(user=user, study=study).get(public_id=UUID(job_id))
    except (ValueError, IngestJob.DoesNotExist):
        return None
    return job, _report_lines(study, [job]).annotate(severity=SEVERITY).order_by(*PROBLEMS_FIRST)


def study_job_reports(*, study: Study, jobs) -> list[JobReport]:
    """The study page's upload report: for ``jobs`` (a page of ``study_jobs``, ``REPORT_JOBS``
    at a time, the latest first), the first ``REPORT_LINES`` lines of each one's per-file report
    about this study (and the files it skipped), problems first, and how many there are: two
    queries, whatever the number of files (a zip of thousands was read whole for each job)."""
    jobs = list(jobs)
    if not jobs:
        return []
    about = _report_lines(study, jobs)
    counts = _outcome_counts(about)
    first = (about.annotate(severity=SEVERITY,
                            line=Window(RowNumber(), partition_by=F("job_id"), order_by=list(PROBLEMS_FIRST)))
             .filter(line__lte=REPORT_LINES).order_by("job_id", "line"))
    lines: dict[int, list[IngestFileResult]] = {}
    for f in first:
        lines.setdefault(f.job_id, []).append(f)
    return [JobReport(job=job, lines=lines.get(job.pk, []), total=sum(counts.get(job.pk, {}).values()),
                      counts=counts.get(job.pk, {})) for job in jobs]


def recent_uploads(*, user, organization):
    """The user's uploads into ``organization``, newest first: a query the upload page shows a
    page of (years of uploads pile up), each with its studies in one more query."""
    return (IngestJob.objects.visible_to(user).filter(organization=organization, created_by=user)
            .select_related("upload").prefetch_related("studies").order_by("-created_at", "-id"))


def upload_job_get(*, user, public_id: UUID, request: HttpRequest | None = None) -> IngestJob:
    """One upload's ingest, for its report page, if ``user`` may see it (``visible_to``: its
    organization's staff); else 404, and a refusal of a job that exists is recorded in its
    organization's trail, as a study's is. The view then asks the policy whether the user may
    upload there: the report is for those who upload, as on the study page."""
    try:
        return (IngestJob.objects.visible_to(user).select_related("organization", "upload")
                .get(public_id=public_id))
    except IngestJob.DoesNotExist:
        record_hidden_refusal(user=user, model=IngestJob, public_id=public_id, request=request,
                              wanted=policy.Action.UPLOAD_STUDY.value)
        raise Http404 from None


def upload_job_lines(*, job: IngestJob):
    """Every line of ``job``'s per-file report, problems first (``PROBLEMS_FIRST``, as the study
    page's), each with its ``severity``: a query to page through; a zip of thousands of files has
    thousands of lines."""
    return IngestFileResult.objects.filter(job=job).annotate(severity=SEVERITY).order_by(*PROBLEMS_FIRST)


def upload_job_studies(*, user, job: IngestJob):
    """The studies ``job`` added to that ``user`` may see (``visible_to``), each with its
    description, state and number of images for the report page to name it by."""
    return Study.objects.visible_to(user).filter(ingest_jobs=job).order_by("created_at", "id")


#: the states of an upload (an ingest job) and of a study that may still change without anyone
#: acting: the upload page asks for their current state while one of its lines names one
#: (``upload_states_get``), and stops once none does
JOB_STATES_PENDING = (JobState.QUEUED, JobState.RUNNING)
STUDY_STATES_PENDING = (StudyState.RECEIVING, StudyState.PROCESSING)
#: the most uploads one request of the upload page asks the state of (the page sends more requests)
UPLOAD_STATES_MAX = 50


def upload_states_get(*, user, organization, public_ids: set[UUID],
                      request: HttpRequest | None = None) -> tuple[list[IngestJob], list[Study]]:
    """``user``'s own uploads (ingest jobs) into ``organization`` named by ``public_ids``, and the
    studies they added that ``user`` sees (``visible_to``), for the upload page to bring the
    states its lines name up to date (a study a file's ingest left processing while the next file
    added to it). The view asks the policy first whether the user may upload there.

    All or nothing: 404 unless each one named is the user's own upload in ``organization``
    (another user's, another organization's, one that does not exist); a refusal of one that
    exists is recorded in its organization's trail, as the report page's is, but for the user's
    own upload in another of their organizations (the page they polled it from was of that one)."""
    jobs = list(IngestJob.objects.visible_to(user).filter(organization=organization, created_by=user,
                                                          public_id__in=public_ids).order_by("created_at", "id"))
    missing = set(public_ids) - {job.public_id for job in jobs}
    if missing:
        theirs = set(IngestJob.objects.filter(public_id__in=missing, created_by=user)
                     .values_list("public_id", flat=True))
        for public_id in sorted(missing - theirs, key=str):
            record_hidden_refusal(user=user, model=IngestJob, public_id=public_id, request=request,
                                  wanted=policy.Action.UPLOAD_STUDY.value)
        raise Http404
    added = IngestJob.studies.through.objects.filter(ingestjob__in=[job.pk for job in jobs]).values("study_id")
    studies = list(with_images_now(Study.objects.visible_to(user).filter(pk__in=added)).order_by("created_at", "id"))
    return jobs, studies


def with_images_now(studies):
    """``studies`` (a queryset), each with ``images_now``: how many images it holds now, counted,
    for the upload page's lines (``upload_states_get``, a file's status in apps.imaging.tus).
    ``num_instances`` is the count its last ingest finished with: while another upload adds to
    the study it stays as it was, and a line kept saying "3 images" of a study another upload had
    added to (found by QA)."""
    return studies.annotate(images_now=Count("instances", distinct=True))


def studies_in_no_case(*, user, organization):
    """The studies of ``organization`` that are in no case (uploaded with "No case (attach
    later)", by anyone there), newest first: a query the upload page shows a page of, for whoever
    may upload there to find and attach them, with who uploaded each (no query per row).

    One row per StudyInstanceUID: its newest version in no case (a version whose next one is
    in no case too is left out). Attaching a study from its page attaches every version of it
    in no case at once, and the study page lists the versions: a row per version would offer
    the same study several times. Tenant-scoped: ``visible_to`` (rows of the organizations where
    the user holds VIEW_CASE), narrowed to ``organization``; nothing of another shows."""
    return (Study.objects.visible_to(user).filter(organization=organization, case__isnull=True).latest_versions()
            .select_related("created_by_job__created_by").order_by("-created_at", "-id"))


def upload_case_choices(*, user, organization, chosen: str = "", facts=None) -> tuple[list, int]:
    """The open cases ``user`` may upload into (the policy's ``upload_cases``), newest first, at
    most ``UPLOAD_CASE_CHOICES`` of them, with ``chosen`` (a case's public id, from its page)
    among them whatever its age; and how many there are in all, for the page to say so.
    ``facts``: the request's (``policy.request_facts``), whose memberships decide the role, not
    read again."""
    roles = facts.roles if facts is not None and facts.actor == user else None
    qs = policy.upload_cases(user, organization, roles=roles).order_by("-created_at", "-id")
    cases = list(qs[:UPLOAD_CASE_CHOICES])
    total = qs.count() if len(cases) == UPLOAD_CASE_CHOICES else len(cases)
    try:
        wanted = UUID(chosen) if chosen else None
    except ValueError:  # not a case's id: nothing chosen
        wanted = None
    # compared as UUIDs: the same id spelt otherwise (capitals, no hyphens) is not a second entry
    if wanted is not None and all(c.public_id != wanted for c in cases):
        extra = qs.filter(public_id=wanted).first()
        if extra is not None:
            cases.insert(0, extra)
    return cases, total


def attach_waits_for_ingest(*, study: Study) -> bool:
    """Whether an ingest is still adding to ``study`` or another version of it (queued or
    running, ``IngestJobQuerySet.adding_to``): ``services.study_attach`` refuses it then, so the
    study page offers no case box until the ingest ends."""
    return IngestJob.objects.adding_to(Study.objects.versions_of(study)).exists()


def attach_case_get(*, user, study: Study, public_id: str):
    """The case ``public_id`` names if ``user`` may attach ``study`` to it: one of the policy's
    ``upload_cases`` of the study's organization (an open case they see, where their role may
    upload); else None (a garbled id, another organization's case, a closed case, an unseen one)."""
    return upload_case_get(user=user, organization=study.organization, public_id=public_id)


def upload_case_get(*, user, organization, public_id: str):
    """The case ``public_id`` names if ``user`` may upload (or attach) studies into it: one of the
    policy's ``upload_cases`` of ``organization``; else None (a garbled id, another organization's
    case, a closed case, an unseen one)."""
    try:
        wanted = UUID(str(public_id))
    except ValueError:
        return None
    return policy.upload_cases(user, organization).filter(public_id=wanted).select_related("patient").first()


@dataclass
class CaseReach:
    """Whom a study put into a case reaches beyond the staff: the shares on the whole case (each
    with what it gives its holder) and the tumor boards on it. Said before a study goes in, by the
    attach page and by the upload page once a case is chosen (``templates/imaging/_case_reach.html``)."""

    grants: list
    boards: list
    #: the case page's list of studies, where a patient's share held back is said ("" when the
    #: user's role is not shown them: ``apps.cases.selectors.case_studies_url``)
    studies_url: str = ""

    @property
    def anyone(self) -> bool:
        return bool(self.grants or self.boards)


def case_reach(*, user, case) -> CaseReach:
    """``CaseReach`` of ``case``: the one read both pages make (a study attached, a study uploaded)."""
    from apps.cases import selectors as case_selectors
    from apps.sharing import selectors as sharing_selectors

    return CaseReach(grants=sharing_selectors.with_gives(sharing_selectors.case_wide_grants(case=case)),
                     boards=case_selectors.case_boards_reaching(user=user, case=case),
                     studies_url=case_selectors.case_studies_url(user=user, case=case))
