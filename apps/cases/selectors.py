"""Reads for cases and tumor boards. Rows are reached only through ``visible_to(user)``: a case
another organization owns, or one the user's grant no longer covers, is a 404, never a 403."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.apps import apps as django_apps
from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import record_hidden_refusal
from apps.cases.models import (
    BOARD_PARTICIPANT_ROLES,
    RESPONSIBLE_CLINICIAN_ROLES,
    Attachment,
    BoardSession,
    BoardState,
    Case,
    CaseNote,
    CaseStatus,
    mrn_matches,
)
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from apps.sharing.selectors import with_gives

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.accounts.models import User
    from apps.organizations.models import Organization

HISTORY_LENGTH = 20


def case_get(*, user: User, public_id: UUID, request: HttpRequest | None = None) -> Case:
    try:
        return (Case.objects.visible_to(user)
                .select_related("organization", "patient", "responsible_clinician", "created_by", "closed_by")
                .get(public_id=public_id))
    except Case.DoesNotExist:
        record_hidden_refusal(user=user, public_id=public_id, request=request, model=Case)
        raise Http404 from None


# --- the case list --------------------------------------------------------------------------

@dataclass
class CaseFilters:
    status: str = ""           # "", "open", "closed"
    service_line: str = ""
    modality: str = ""
    opened_from: date | None = None
    opened_to: date | None = None
    q: str = ""


def imaging_ready() -> bool:
    """Studies come from the imaging app; the case pages show them once it is installed."""
    return django_apps.is_installed("apps.imaging")


def _modality_case_ids(user: User, modality: str) -> QuerySet | None:
    """A subquery of the ids of cases with a study of ``modality`` ("CT" in "CT,PT") that ``user``
    may see: only those studies, so a share naming some studies of a case does not tell whether
    the others are of that modality. None when the imaging app is not installed."""
    if not imaging_ready():
        return None
    study = django_apps.get_model("imaging", "Study")
    return study.objects.visible_to(user).filter(modalities__icontains=modality).values("case_id")


def case_list(*, user: User, organization: Organization, filters: CaseFilters,
              request: HttpRequest | None = None) -> QuerySet[Case]:
    """The cases of the active organization this user may see, filtered. Tenant scoping is
    ``visible_to`` plus the active organization: another organization's case never appears.
    ``request``: as for ``case_search_match``."""
    qs = case_scope(user=user, organization=organization)
    if filters.status in CaseStatus.values:
        qs = qs.filter(status=filters.status)
    if filters.service_line:
        qs = qs.filter(service_line__iexact=filters.service_line)
    if filters.opened_from:
        qs = qs.filter(created_at__date__gte=filters.opened_from)
    if filters.opened_to:
        qs = qs.filter(created_at__date__lte=filters.opened_to)
    if filters.modality:
        case_ids = _modality_case_ids(user, filters.modality)
        if case_ids is not None:
            qs = qs.filter(id__in=case_ids)
    if filters.q.strip():
        qs = qs.filter(case_search_match(user=user, organization=organization, q=filters.q, request=request))
    return qs.select_related("patient", "responsible_clinician").order_by("-created_at", "-id")


def case_search_match(*, user: User, organization: Organization, q: str, request: HttpRequest | None = None) -> Q:
    """The cases a search text finds, for this user in this organization: the case list's search
    and the tumor board form's choice of cases (one search, so a case found in one is found in
    the other). Title, clinical question, referrer, service line; the patient's MRN and name
    only for those who may see who the patient is. An empty text matches every case. With
    ``request`` (a page that only reads), that decision is made on what the request read
    (``policy.request_facts``: its memberships), shared with the page's other decisions."""
    q = q.strip()
    if not q:
        return Q()
    match = (Q(title__icontains=q) | Q(referring_question__icontains=q) | Q(referred_by__icontains=q)
             | Q(service_line__icontains=q))
    if policy.can(user, Action.VIEW_PATIENT_IDENTITY, organization, facts=policy.request_facts(request, user)):
        # only staff may find a case by who the patient is: a search must not confirm a name
        match |= mrn_matches(q, field="patient__mrn_key") | Q(patient__name__icontains=q)
    return match


def case_scope(*, user: User, organization: Organization) -> QuerySet[Case]:
    return Case.objects.visible_to(user).filter(organization=organization)


def case_counts_and_service_lines(*, user: User, organization: Organization) -> tuple[dict[str, int], list[str]]:
    """Over the cases this user may see in the active organization: open / closed / total, and
    the service lines named (the list's filter choices). One query, grouped by both (the two
    read the same rows)."""
    counts = {"total": 0, "open": 0, "closed": 0}
    lines: set[str] = set()
    for line, status, n in (case_scope(user=user, organization=organization).order_by()
                            .values_list("service_line", "status").annotate(n=Count("id"))):
        counts["total"] += n
        if status in (CaseStatus.OPEN, CaseStatus.CLOSED):
            counts[status] += n
        if line:
            lines.add(line)
    return counts, sorted(lines)


# --- the case page --------------------------------------------------------------------------

@dataclass
class CasePage:
    case: Case
    studies: Any = field(default_factory=list)  # a query of them: the view shows a page
    notes: Any = field(default_factory=list)  # a query of them: the view shows a page
    #: each with ``gives`` (``policy.grants_give_holders``) and ``held_back``: why its patient is
    #: given none of its studies (``policy.grants_held_back_entirely``), () when they are given some
    participants: list[Grant] = field(default_factory=list)
    my_grants: list[Grant] = field(default_factory=list)  # each with ``gives``: policy.grant_gives
    history: list[AuditEvent] = field(default_factory=list)
    boards: list[BoardSession] = field(default_factory=list)
    attachments: Any = field(default_factory=list)  # a query of them: the view shows a page
    can_manage: bool = False
    can_view_images: bool = False
    #: the list of studies, for the access list to point to ("" when the page lists none: ``lists_studies``)
    studies_url: str = ""
    can_delete_studies: bool = False
    can_upload: bool = False  # studies into this case: the upload page with it chosen
    can_add_note: bool = False
    # the case's reports and attachments: listed, or said to be outside what was shared (a share
    # naming some studies); and the form to attach one, offered only to whoever would then see it
    can_view_documents: bool = False
    can_attach: bool = False
    can_share: bool = False  # the case, while it is open
    show_patient: bool = False
    #: correct the patient's recorded name and birth date (``services.patient_update``)
    can_edit_patient: bool = False
    #: how many of the studies listed have a patient ID in their images that is not the case's
    #: MRN (``patient_id_flags``): the studies section warns of them
    other_patient_studies: int = 0
    #: how many of them carry no patient ID in their images at all (counted apart: nothing to
    #: compare is not another patient; ``patient_id_flags``)
    no_patient_id_studies: int = 0


def _studies_of(case: Case, user: User) -> Any:
    """The case's studies this user may see (``visible_to``: a grant naming some studies of the
    case lists those, not the others), latest version of each (everyone sees the same version),
    with their renditions when the imaging app has them: a fixed number of queries whatever their
    count. Series and instance counts are kept on the study row by ingest. A query, ordered, for
    the page to show a page of (a case may gather hundreds of studies over the years)."""
    if not imaging_ready():
        return []
    Study = django_apps.get_model("imaging", "Study")
    qs = Study.objects.visible_to(user).filter(case=case)
    if hasattr(qs, "latest_versions"):
        qs = qs.latest_versions()
    related = {f.name for f in Study._meta.get_fields()}
    if "renditions" in related:
        qs = qs.prefetch_related("renditions")
    return qs.order_by("-study_date", "-created_at", "id")


#: what a study's images say of its patient against its case's MRN (``patient_id_flags``)
OTHER_PATIENT = "differs"
NO_PATIENT_ID = "missing"


def patient_id_flags(*, case: Case, patient_ids: Iterable[str | None]) -> list[str | None]:
    """For each of ``patient_ids`` (those in a case's studies' images), what the case page flags:
    None when it is the MRN of ``case``'s patient; else NO_PATIENT_ID when the images carry none
    (``patient_id_missing``: nothing to compare is not another patient, found by QA), OTHER_PATIENT
    otherwise. By ``apps.imaging.services.attach_patient_ids_differ``, the one rule the attach
    confirmation warns by and ``study_attach`` refuses by, so the case page flags exactly the
    studies attaching would have warned of. Nothing is stored: the rule is applied to the studies
    as the page shows them."""
    from apps.imaging.services import attach_patient_ids_differ

    mrn = case.patient.mrn
    return [None if not attach_patient_ids_differ(patient_ids=[pid], mrn=mrn)
            else NO_PATIENT_ID if patient_id_missing(pid) else OTHER_PATIENT for pid in patient_ids]


def patient_id_missing(patient_id: str | None) -> bool:
    """Whether an image's patient ID is absent (none, or only blanks): the images carry no patient
    ID, which the user is told apart from an ID that is another patient's."""
    from apps.cases.models import mrn_key

    return mrn_key(patient_id) == ""


def studies_mark_other_patient(*, case: Case, studies: Iterable[Any]) -> None:
    """Sets ``patient_differs`` and ``patient_id_missing`` on each of ``studies`` (a page of the
    case page's list), as ``patient_id_flags`` decides them: the Studies table flags those, each
    with its own badge."""
    studies = list(studies)
    for study, flag in zip(studies, patient_id_flags(case=case, patient_ids=[s.patient_id for s in studies]),
                           strict=True):
        study.patient_differs = flag == OTHER_PATIENT
        study.patient_id_missing = flag == NO_PATIENT_ID


#: what the case page asks the policy about its case: whether it may be seen at all, and its buttons
PAGE_ACTIONS = (Action.VIEW_CASE, Action.MANAGE_CASE, Action.VIEW_IMAGES, Action.DELETE_STUDY, Action.UPLOAD_STUDY,
                Action.ADD_NOTE, Action.VIEW_DOCUMENTS, Action.ATTACH_DOCUMENT, Action.SHARE_CASE,
                Action.VIEW_PATIENT_IDENTITY)


def case_page_decisions(*, user: User, case: Case, request: HttpRequest | None = None) -> dict[Action, bool]:
    """The policy's answer for each of ``PAGE_ACTIONS`` on ``case``, decided at once (the
    actor's memberships and grants read once for all of them). With ``request``, what the
    decisions read is the request's (``policy.request_facts``: its memberships, read by the
    middleware), shared with the page's other decisions (its navigation)."""
    return policy.can_actions(user, PAGE_ACTIONS, case, facts=policy.request_facts(request, user))


def lists_studies(may: dict[Action, bool]) -> bool:
    """Whether the case page lists the case's studies to whoever the policy gave ``may`` (its
    images, or their deletion: an org admin sees no pixels but may delete a study)."""
    return bool(may.get(Action.VIEW_IMAGES) or may.get(Action.DELETE_STUDY))


def case_studies_url(*, user: User, case: Case, request: HttpRequest | None = None) -> str:
    """The case page's list of studies (its ``#studies``), for a page that points to it (the close
    and attach confirmations, where a patient's share is held back, ``sharing/_grant_access.html``),
    if the case page lists them to ``user`` (``lists_studies``); else "" (a coordinator's role
    shows the case's status, not its studies)."""
    may = policy.can_actions(user, (Action.VIEW_IMAGES, Action.DELETE_STUDY), case,
                             facts=policy.request_facts(request, user))
    return f"{case.get_absolute_url()}#studies" if lists_studies(may) else ""


def case_page(*, user: User, case: Case, may: dict[Action, bool], request: HttpRequest | None = None) -> CasePage:
    """Everything the case page shows, in a bounded number of queries: one per section, not
    one per study, note or participant. ``may``: ``case_page_decisions`` for this user and case,
    whose ``VIEW_CASE`` the caller has required. ``request``: as for ``case_page_decisions``."""
    if not may[Action.VIEW_CASE]:
        raise ValueError("case_page: the case may not be seen by this user")
    can_manage = may[Action.MANAGE_CASE]
    page = CasePage(case=case, can_manage=can_manage, can_view_images=may[Action.VIEW_IMAGES],
                    can_delete_studies=may[Action.DELETE_STUDY], can_upload=may[Action.UPLOAD_STUDY],
                    can_add_note=may[Action.ADD_NOTE], can_view_documents=may[Action.VIEW_DOCUMENTS],
                    can_attach=may[Action.ATTACH_DOCUMENT], can_share=case.is_open and may[Action.SHARE_CASE],
                    show_patient=may[Action.VIEW_PATIENT_IDENTITY],
                    can_edit_patient=can_manage and may[Action.VIEW_PATIENT_IDENTITY])
    if page.can_view_documents:  # clinical documents: not for status-only roles nor some studies' shares
        page.attachments = attachments_of(case, user)
    if lists_studies(may):
        page.studies_url = "#studies"
        # an org admin sees no pixels but may delete a study: the list (no viewer) leads to its page
        page.studies = _studies_of(case, user)
        # all those listed, not only the page shown; counted only for whoever may see who the
        # patient is (an outside consultant, from whom the patient is hidden, is not warned)
        if page.show_patient and hasattr(page.studies, "values_list"):
            ids = list(page.studies.prefetch_related(None).order_by().values_list("patient_id", flat=True))
            flags = patient_id_flags(case=case, patient_ids=ids)
            page.other_patient_studies = flags.count(OTHER_PATIENT)
            page.no_patient_id_studies = flags.count(NO_PATIENT_ID)
    page.notes = CaseNote.objects.filter(case=case).select_related("author").order_by("created_at", "id")
    now = timezone.now()
    if can_manage:
        # who has access, and until when: the live grants (the case's participants)
        page.participants = list(case.grants.live(now).select_related("grantee", "created_by")
                                 .order_by("expires_at"))
        # what each gives its holder, as the policy decides it, not the permissions it names; and
        # a patient's share all of whose studies are held back from them (the images' patient ID
        # is not the MRN, or missing): the patient sees nothing yet, and the staff are told why
        # (as the close and attach confirmations say it: the one with_gives)
        with_gives(page.participants, now=now)
        page.history = list(AuditEvent.objects.filter(case_ref=case.public_id).select_related("actor")
                            .order_by("-id")[:HISTORY_LENGTH])
        page.boards = list(case.board_sessions.order_by("-meeting_at"))
    else:
        page.my_grants = list(case.grants.live(now).filter(grantee=user).order_by("expires_at"))
        # what each gives them, as the policy decides it (its use case, renditions, studies,
        # download limit), not the permissions it names
        for grant, gives in zip(page.my_grants, policy.grant_gives(
                user, page.my_grants, facts=policy.request_facts(request, user)), strict=True):
            grant.gives = gives
    return page


def case_grants_closing_ends(*, case: Case, now: datetime | None = None) -> list[Grant]:
    """The grants that closing ``case`` would end (``services.case_close`` revokes every grant
    not revoked): those live now or yet to start; an expired one has ended already. The close
    confirmation lists these, and the message after closing counts them (``case_close``)."""
    return list(case.grants.filter(revoked_at__isnull=True, expires_at__gt=now or timezone.now())
                .select_related("grantee", "created_by").order_by("expires_at"))


def attachments_of(case: Case, user: User) -> QuerySet[Attachment]:
    """The case's reports and attachments that ``user`` may open, newest first: a query the page
    shows a page of. ``visible_to``: staff and a grant on the whole case list them all; a grant
    naming some studies of the case lists none (``AttachmentQuerySet``), as the policy refuses
    opening them (``services.attachment_open``)."""
    return (Attachment.objects.visible_to(user).filter(case=case).select_related("uploaded_by")
            .order_by("-created_at", "-id"))


def attachment_get(*, user: User, public_id: UUID, request: HttpRequest | None = None) -> Attachment:
    try:
        return Attachment.objects.visible_to(user).select_related("case", "blob").get(public_id=public_id)
    except Attachment.DoesNotExist:
        record_hidden_refusal(user=user, public_id=public_id, request=request, model=Attachment,
                              wanted=str(Action.VIEW_IMAGES))  # what downloading it needs (services.attachment_open)
        raise Http404 from None


# --- tumor boards ---------------------------------------------------------------------------

def members(*, organization_id: int, roles: Iterable[str] | None = None) -> QuerySet[User]:
    """Active accounts with an active membership of this organization (with one of ``roles``
    there), by name. One filter() call: a second would join memberships again and match a role
    held in another organization."""
    from apps.accounts.models import User

    here: dict[str, object] = {"memberships__organization_id": organization_id, "memberships__is_active": True}
    if roles is not None:
        here["memberships__role__in"] = list(roles)
    return User.objects.filter(is_active=True, **here).distinct().order_by("full_name", "email")


def member_search_match(*, q: str) -> Q:
    """The accounts a search text finds among members: a part of their name or e-mail address.
    An empty text matches everyone."""
    q = q.strip()
    return Q(full_name__icontains=q) | Q(email__icontains=q) if q else Q()


def responsible_clinicians(*, organization_id: int) -> QuerySet[User]:
    """Who may be a case's responsible clinician in this organization: its active clinicians and
    radiologists (active accounts). The case form offers these and the services accept no other."""
    return members(organization_id=organization_id, roles=RESPONSIBLE_CLINICIAN_ROLES)


def board_get(*, user: User, public_id: UUID, request: HttpRequest | None = None) -> BoardSession:
    try:
        return (BoardSession.objects.visible_to(user).select_related("organization", "host")
                .get(public_id=public_id))
    except BoardSession.DoesNotExist:
        record_hidden_refusal(user=user, public_id=public_id, request=request, model=BoardSession)
        raise Http404 from None


def board_list(*, user: User, organization: Organization) -> QuerySet[BoardSession]:
    return (BoardSession.objects.visible_to(user).filter(organization=organization).select_related("host")
            .annotate(case_count=Count("cases", distinct=True),
                      participant_count=Count("participants", distinct=True))
            .order_by("-meeting_at", "-id"))


def board_gave_access(*, user: User, board: BoardSession) -> bool:
    """Whether ``board``'s meeting gave ``user`` access to its cases (a grant of it addressed to
    them): its page, once the meeting ended, tells them that this access ended with it. What it
    says, not what they may do (the policy decides that, on grants the end revoked)."""
    return board.grants.filter(pk__in=Grant.objects.addressed_to(user).values("pk")).exists()


def board_cases(*, user: User, board: BoardSession) -> list[Case]:
    """The board's cases this user may open now (all of them for staff; for a participant,
    those a live grant covers)."""
    return list(Case.objects.visible_to(user).filter(board_sessions=board).select_related("patient")
                .order_by("title"))



def board_grantees(*, board: BoardSession) -> QuerySet[User]:
    """Whom starting ``board`` gives a view grant on each of its open cases: its participants
    who are still active accounts with an active membership of its organization in a role that
    may take part (``BOARD_PARTICIPANT_ROLES``: one who left, or became a patient account, since it
    was scheduled gets nothing), the host left out (they run cases there already).
    ``services.board_start`` grants exactly these; the attach confirmation counts them."""
    from apps.organizations.models import Membership

    allowed = Membership.objects.filter(organization_id=board.organization_id, is_active=True,
                                        role__in=BOARD_PARTICIPANT_ROLES).values("user_id")
    return board.participants.filter(pk__in=allowed, is_active=True).exclude(pk=board.host_id)


@dataclass(frozen=True)
class BoardReach:
    """A tumor board through which others see every study of a case: how many people, and until
    when (a live board: when the grants its start made end; a scheduled one: not started, None)."""

    board: BoardSession
    people: int
    until: datetime | None


def case_boards_reaching(*, user: User, case: Case) -> list[BoardReach]:
    """The tumor boards on ``case`` whose participants see every study of it, a study attached
    later too, by what the policy grants: a live board through the grants its start made on this
    case that are live now (ended boards revoked theirs; past the review window they expired; a
    case closed when it started got none); a scheduled one through those its start will make
    (``board_grantees``), if it names anyone. The page that attaches a study to a case lists them
    beside the shares on the whole case (``apps.sharing.selectors.case_wide_grants``, which leaves
    the boards' grants to this list). Boards are read through ``visible_to(user)``, by meeting
    time; a query or two per board, and a case is on a few."""
    now = timezone.now()
    reach = []
    boards = (BoardSession.objects.visible_to(user).filter(cases=case, state__in=[BoardState.SCHEDULED,
                                                                                  BoardState.LIVE])
              .order_by("meeting_at", "id"))
    for board in boards:
        if board.state == BoardState.LIVE:
            given = board.grants.filter(case=case).live(now).aggregate(people=Count("grantee", distinct=True),
                                                                        until=Max("expires_at"))
            people, until = given["people"], given["until"]
        else:
            people, until = board_grantees(board=board).count(), None
        if people:
            reach.append(BoardReach(board=board, people=people, until=until))
    return reach


# --- MRNs renamed as duplicates -----------------------------------------------------------------

#: an MRN cases 0004 or 0005 renamed: "<mrn> (duplicate <the row's id>)", or "(duplicate <id>-2)",
#: "-3"... where 0005 found the first an MRN of the organization already
_RENAMED_DUPLICATE = re.compile(r"(?P<base>.*) \(duplicate (?P<pk>\d+)(?:-\d+)?\)", re.DOTALL)


@dataclass
class MrnDuplicate:
    """A patient whose MRN a migration renamed (it was one MRN with ``kept_by``'s, the first
    entered, which kept it; ``None`` when that patient is no longer found by it)."""

    patient: Any
    kept_by: Any | None


def mrn_duplicates(*, organization_id: int | None = None) -> list[MrnDuplicate]:
    """The patients whose MRN cases 0004 or 0005 renamed "<mrn> (duplicate <id>)" (``id`` their
    own row's: an MRN typed so, with another number, is not one), by organization and id, for the
    organization's staff to reconcile: each with the patient that kept the MRN. No migration
    merged them nor recorded the rename. For the operator (``manage.py mrn_duplicates``): every
    organization's unless ``organization_id``."""
    from apps.cases.models import Patient, mrn_key

    patients = Patient.objects.filter(mrn__contains=" (duplicate ").order_by("organization_id", "id")
    if organization_id is not None:
        patients = patients.for_org(organization_id)
    found = []
    for patient in patients.select_related("organization"):
        renamed = _RENAMED_DUPLICATE.fullmatch(patient.mrn)
        if renamed is None or int(renamed["pk"]) != patient.pk:
            continue
        same = Patient.objects.filter(organization_id=patient.organization_id).exclude(pk=patient.pk)
        key = mrn_key(renamed["base"])
        kept_by = same.filter(mrn_key=key).first()
        if kept_by is None and len(patient.mrn) == Patient._meta.get_field("mrn").max_length:
            # a long MRN was cut to make room for its suffix: the one keeping it has more after
            kept_by = same.filter(mrn_key__startswith=key, pk__lt=patient.pk).order_by("pk").first()
        found.append(MrnDuplicate(patient=patient, kept_by=kept_by))
    return found
