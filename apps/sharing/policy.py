"""The one place that says yes or no.

Every access decision in Lightbox is ``can(actor, action, obj)``: pages, the API, downloads and
every later interface call it (or ``require``, which raises and records the denial); none of
them re-implements a rule. Roles map to actions through ``ROLE_ACTIONS``, a table, so one
table-driven test covers every pair. Querysets ask ``org_ids_where`` which organizations' rows a
user may see, so list scoping and object checks come from the same table.

Security contract:
- a user holds an action in an organization only through an *active* membership there whose
  role grants it; an inactive user holds nothing;
- an object belongs to exactly one organization (``_org_id_of``), and rights in one organization
  never reach objects of another;
- every denial raised by ``require`` is recorded in the audit log.

External consultants and patients hold no organization-wide data rights: they see only what a
live Grant names.

Actors. ``actor`` is a User, or a ``LinkHolder``: a visitor who opened anonymous share links in
this browser session (and who may also be signed in). Views get the right one from
``actor_for(request)``; a view that serves case or study data to link holders marks itself with
``@link_aware`` (tests/sharing/test_access_matrix.py then expects link holders to get in).

Grants. A grant covers an object when it is live (not revoked, started, not expired, case open),
the object is in its case (and in its named studies, if it names any), and one of its permissions
maps to the action (``PERMISSION_ACTIONS``). Download actions also need the grant under its
download limit and the rendition in its scope; a grant marked ``mfa_required`` needs a user who
passed MFA in this session. A patient of the grant's organization (``_downloads_as_patient``: a
patient member there, whatever they are elsewhere; an account that accepted a patient invitation or
a patient-education share from it) is given what a patient-education share gives and nothing else
(the education copy), whatever the grant names. A grant's use case caps what it gives (``USE_CASE_GIVES``), whatever its
permissions name: a patient-education share gives the download of the education copy (the patient
portal's) and nothing else, whoever holds it (a patient member, an account of no organization that
accepted one sent to its e-mail address, staff of another organization, an anonymous link's holder):
never the case page (its notes, its clinical question), study pages, the viewer's frames, previews
or originals, nor a request for the original. Every check reads the database: revocation and expiry
take effect on the very next request.

Why a download is refused (a second factor, the download limit, a scope that leaves the rendition
out) is ``download_refusal``'s answer, from the same rule (``_grant_refusal``), for pages that
explain it.

Renewing a grant (RENEW_GRANT) is decided on the grant: managing it and sharing its case, both.

The active organization. Someone may be a member of several organizations and works in one at a
time (the header's switcher). On the portal's pages, staff-side actions on the objects of another
of their organizations (``ACTIVE_ORGANIZATION_ACTIONS``: deciding a request for the original,
and asking for one under a share of theirs there; revoking, extending, renewing a share; sharing
a case; editing, closing, reopening a case, its notes and documents; running a tumor board;
deleting, exporting or attaching a study; managing members) are decided only once it is the
active one (``decision_facts`` and ``request_facts`` carry it); the pages list only the active
organization's rows (``organizations_elsewhere``) and ask the person to switch for another's
(``organization_to_switch_to``: apps.organizations.switching). An organization they are not
staff of is not theirs to switch to for this: what its shares give them is decided as ever,
whether they are no member there or one in a role that acts for it in nothing (an invited
outside consultant, a patient: ``acts_for_organization``), who holds only what its shares give.
The API has no switcher, nor the viewer's frames (an open viewer is not stopped by a switch in
another tab): their calls are decided on the roles and grants alone.

Asking for the original DICOM (REQUEST_ORIGINAL) is decided on a grant, not through a role: its
own recipient, while it is live, when they cannot download the original already and no request
of theirs for the original of its case (under it or another share of the case) waits for a
decision (``original_request_refusal``). The request service and
the pages that offer it ask this.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from apps.organizations.models import Membership, Organization, Role
from apps.sharing.usecases import UseCase

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.accounts.models import User
    from apps.sharing.models import Grant


class Action(StrEnum):
    VIEW_ORGANIZATION = "view_organization"   # be in it: switch to it, see its name
    VIEW_ORG_DATA = "view_org_data"           # see the organization's own records (staff)
    VIEW_MEMBERS = "view_members"             # see who else is a member
    MANAGE_MEMBERS = "manage_members"         # add members, change roles, deactivate
    MANAGE_ORGANIZATION = "manage_organization"  # edit the organization's policy settings
    VIEW_AUDIT = "view_audit"                 # read the organization's audit trail
    VIEW_CASE = "view_case"                   # the case page: question, status, participants
    VIEW_IMAGES = "view_images"               # pixels in the viewer
    DOWNLOAD_PREVIEW = "download_preview"     # lossy, labelled previews
    DOWNLOAD_ORIGINAL = "download_original"   # the diagnostic original DICOM
    SHARE_CASE = "share_case"                 # grant others access
    MANAGE_CASE = "manage_case"               # edit, close, reopen, run tumor boards
    MANAGE_GRANT = "manage_grant"             # revoke or extend a grant (its creator too)
    # Renew a grant: a fresh grant and a fresh link, so a new share. Held by no role: MANAGE_GRANT
    # on the grant and SHARE_CASE on its case, both (``can``), so roles that may not share (org
    # admins, coordinators) manage grants but never receive a working link by renewing one.
    RENEW_GRANT = "renew_grant"
    DECIDE_ORIGINAL_REQUEST = "decide_original_request"  # approve/decline (a radiologist or the owner)
    # Ask for the original DICOM under a grant (an OriginalRequest): decided on the grant, held by
    # no role; see ``original_request_refusal``.
    REQUEST_ORIGINAL = "request_original"
    UPLOAD_STUDY = "upload_study"             # upload and ingest studies into the organization
    # A de-identified copy (PS3.15 Annex E) of a study, for use outside the organization: staff
    # who read the originals, never through a grant (apps.deid).
    EXPORT_DEIDENTIFIED = "export_deidentified"
    # Delete a study version for good (its images, renditions and de-identified exports):
    # radiologists, who manage the organization's imaging and can check what they remove, and
    # org admins, who answer for its records (a wrong-patient upload); never through a grant.
    DELETE_STUDY = "delete_study"
    # Start a tumor board's meeting (which gives its participants access): the board's host
    # only, while their role may manage cases there.
    RUN_BOARD = "run_board"
    # End a live board's meeting (which takes that access away at once): the host (RUN_BOARD) or
    # anyone whose role may manage cases in the board's organization, so a meeting whose host
    # left, was demoted or forgot does not give access for the whole review window. Held by no
    # role: decided on a board only.
    END_BOARD = "end_board"
    # Write a note or attach a document on a case: whoever reads its images (by role or through a
    # live grant) or runs it (MANAGE_CASE), while it is open. Held by no role: decided on a case.
    ADD_NOTE = "add_note"
    # See a case's reports and attachments (tied to none of its studies): whoever may open a
    # document of the case (VIEW_IMAGES on one: staff who read images, a grant on the whole case),
    # never a share that names some of its studies. Held by no role: decided on a case.
    VIEW_DOCUMENTS = "view_documents"
    # Attach a document to a case: ADD_NOTE on it and VIEW_DOCUMENTS, both, so nobody is offered
    # an upload they could not then see listed or open. Held by no role: decided on a case.
    ATTACH_DOCUMENT = "attach_document"
    # Patient name, MRN and birth date: staff of the organization only, never through a grant.
    # Outsiders (consultants, board guests, link holders) see the case without identifiers.
    VIEW_PATIENT_IDENTITY = "view_patient_identity"


_STAFF = {Action.VIEW_ORGANIZATION, Action.VIEW_ORG_DATA, Action.VIEW_MEMBERS, Action.VIEW_PATIENT_IDENTITY}
_READER = {Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL,
           Action.SHARE_CASE, Action.MANAGE_CASE}

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    # Org admins run the organization; they see case status but not pixels (minimum necessary).
    # Deleting a study needs no pixels; it is theirs to do as the ones who answer for the records.
    Role.ORG_ADMIN: frozenset(_STAFF | {Action.MANAGE_MEMBERS, Action.MANAGE_ORGANIZATION, Action.VIEW_AUDIT,
                                        Action.VIEW_CASE, Action.MANAGE_CASE, Action.MANAGE_GRANT,
                                        Action.DELETE_STUDY}),
    Role.RADIOLOGIST: frozenset(_STAFF | _READER | {Action.MANAGE_GRANT, Action.DECIDE_ORIGINAL_REQUEST,
                                                    Action.UPLOAD_STUDY, Action.EXPORT_DEIDENTIFIED,
                                                    Action.DELETE_STUDY}),
    # Clinicians and coordinators upload but do not delete: a deletion cannot be undone.
    Role.CLINICIAN: frozenset(_STAFF | _READER | {Action.MANAGE_GRANT, Action.UPLOAD_STUDY,
                                                  Action.EXPORT_DEIDENTIFIED}),
    # Coordinators organize cases and boards: status, not pixels.
    # They also bring outside studies in (upload), which shows them no pixels.
    Role.COORDINATOR: frozenset(_STAFF | {Action.VIEW_CASE, Action.MANAGE_CASE, Action.MANAGE_GRANT,
                                          Action.UPLOAD_STUDY}),
    # Outsiders hold nothing organization-wide: only what a live Grant names.
    Role.EXTERNAL_CONSULTANT: frozenset({Action.VIEW_ORGANIZATION}),
    Role.PATIENT: frozenset({Action.VIEW_ORGANIZATION}),
}

#: what each grant permission lets its grantee do on the granted case. Any live grant also
#: shows the case page (VIEW_CASE), unless its use case gives none (``USE_CASE_GIVES``).
PERMISSION_ACTIONS: dict[str, frozenset[Action]] = {
    "view": frozenset({Action.VIEW_CASE, Action.VIEW_IMAGES}),
    "download_preview": frozenset({Action.DOWNLOAD_PREVIEW}),
    "download_original": frozenset({Action.DOWNLOAD_ORIGINAL}),
    "reshare": frozenset({Action.SHARE_CASE}),
}


#: the actions a grant may give (``_grant_refusal``: its case page, and what its permissions
#: name); any other (deciding a request for the original, managing members...) only a role gives
_GRANT_ACTIONS: frozenset[Action] = frozenset({Action.VIEW_CASE}).union(*PERMISSION_ACTIONS.values())


def roles_with(action: Action | str) -> list[str]:
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]


def org_ids_where(user: User, action: Action | str) -> QuerySet[Membership]:
    """A subquery of the organization ids in which ``user`` holds ``action``."""
    if not user.is_authenticated or not user.is_active:
        return Membership.objects.none().values("organization_id")
    return Membership.objects.filter(
        user=user, is_active=True, role__in=roles_with(action),
    ).values("organization_id")


#: actions that also need the grant under its download limit and the rendition in its scope
DOWNLOAD_ACTIONS = frozenset({Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL})

#: actions the *owner* of an object holds (the grant's creator, the case's creator or responsible
#: clinician) provided their role in the organization holds ``OWNER_NEEDS[action]``
OWNER_NEEDS: dict[Action, Action] = {
    Action.MANAGE_GRANT: Action.SHARE_CASE,
    Action.DECIDE_ORIGINAL_REQUEST: Action.DOWNLOAD_ORIGINAL,
}

#: what a patient account may download through any grant: the labelled low-resolution education
#: copy, never an original, a lossless copy or a preview (apps.education's portal offers it)
PATIENT_RENDITIONS = frozenset({"education"})

#: what a grant of a use case gives at most, whatever its permissions name: the actions, and the
#: renditions its downloads may be of. A patient-education share is for the patient portal: the
#: labelled low-resolution education copy, downloaded (and shown on the portal's page, which asks
#: the same question); never the case page, its notes and clinical question, the study pages,
#: the viewer, previews or originals, whoever holds it. A use case not named here is capped by
#: its permissions only.
USE_CASE_GIVES: dict[str, tuple[frozenset[Action], frozenset[str]]] = {
    UseCase.PATIENT_EDUCATION: (frozenset({Action.DOWNLOAD_PREVIEW}), PATIENT_RENDITIONS),
}


def use_cases_without(action: Action | str) -> list[str]:
    """The use cases whose grants never give ``action`` (``USE_CASE_GIVES``), for querysets that
    list what grants show (``granted_case_ids``) and pages that send a grant's holder somewhere."""
    return [use_case for use_case, (actions, _renditions) in USE_CASE_GIVES.items() if action not in actions]


def patient_education_refused_to(user: Any, organization_id: int) -> bool:
    """Whether a patient-education share of ``organization_id``'s case may not go to ``user``:
    someone who works for that organization (an active membership in a staff role,
    ``acts_for_organization``: a radiologist, a clinician, an admin). Their role gives them the
    case already, far more than the education copy; such a share gives them nothing, and its review
    named them "A patient" (found by QA: a radiologist was sent one). It is a wrong template or a
    wrong person, so it is refused, not confirmed. A patient-education share goes to a patient:
    a patient member, or an account the organization does not employ (the patient invited by
    e-mail, whose account may be staff of another organization)."""
    return _active_user(user) and acts_for_organization(role_in(user, organization_id))


def share_refused_to_patient(user: Any, organization_id: int, *, use_case: str) -> bool:
    """Whether a share of ``use_case`` of ``organization_id``'s case may not go to ``user``: a
    patient of that organization (``_downloads_as_patient``), sent a share of another template than
    patient-education. It would give them what a patient-education share gives and nothing more
    (``_grant_refusal``), so it is a wrong template or a wrong person: refused, not made."""
    return use_case != UseCase.PATIENT_EDUCATION and _downloads_as_patient(user, organization_id)


def _use_case_refuses(grant: Grant, action: Action, rendition: str | None) -> bool:
    """Whether ``grant``'s use case never gives ``action`` (of ``rendition``, for a download)."""
    return _use_case_never_gives(grant.use_case, action, rendition)


def _use_case_never_gives(use_case: str, action: Action, rendition: str | None) -> bool:
    gives = USE_CASE_GIVES.get(use_case)
    if gives is None:
        return False
    actions, renditions = gives
    return action not in actions or (action in DOWNLOAD_ACTIONS and rendition not in renditions)


LINK_SESSION_KEY = "lightbox_share_links"


@dataclass(frozen=True)
class LinkHolder:
    """A visitor who opened anonymous share links in this session (ids of ShareLink rows), and
    the signed-in user, if any. Holds nothing beyond what those links' grants name.
    ``session_ref``: a digest of the browser session's key (``session_ref``), which binds a
    download's resumes to the session that began it."""

    link_ids: tuple[int, ...]
    user: Any = None
    session_ref: str = ""
    is_authenticated = False
    is_active = True

    @cached_property
    def label(self) -> str:
        """How the audit trail names this actor: ``link:<public id>`` of each link (a single
        one is also the event's ``link_ref``), never the rows' internal ids."""
        from apps.sharing.models import ShareLink

        public = dict(ShareLink.objects.filter(pk__in=self.link_ids).values_list("pk", "public_id"))
        return "link:" + ",".join(str(public.get(i, i)) for i in self.link_ids)


def session_ref(request: HttpRequest) -> str:
    """A digest of the request's session key ("" with no session): what a link holder's
    download is bound to, stored instead of the key itself."""
    key = getattr(getattr(request, "session", None), "session_key", None)
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


def actor_for(request: HttpRequest) -> Any:
    """The actor of a request: the user, or a LinkHolder when anonymous links were opened."""
    link_ids = tuple(request.session.get(LINK_SESSION_KEY, ())) if hasattr(request, "session") else ()
    user = getattr(request, "user", None)
    if not link_ids:
        return user
    return LinkHolder(link_ids=link_ids, user=user if user is not None and user.is_authenticated else None,
                      session_ref=session_ref(request))


V = TypeVar("V", bound=Callable[..., Any])


def link_aware(view: V) -> V:
    """Mark a view that resolves its actor with ``actor_for`` (so anonymous link holders may use
    it). The access matrix expects link holders to be refused by every unmarked view."""
    view.lightbox_link_aware = True  # type: ignore[attr-defined]
    return view


def serves(action: Action | str) -> Callable[[V], V]:
    """Declare the action a view needs on the case or study its URL names (read by the access
    matrix test; the view still calls ``require``/``can`` itself)."""

    def mark(view: V) -> V:
        view.lightbox_action = Action(action)  # type: ignore[attr-defined]
        return view

    return mark


def _user_of(actor: Any) -> Any:
    return actor.user if isinstance(actor, LinkHolder) else actor


def _active_user(user: Any) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and user.is_active


def _verified(user: Any) -> bool:
    """The user passed MFA in this session (django-otp's OTPMiddleware sets is_verified)."""
    check = getattr(user, "is_verified", None)
    return bool(check()) if callable(check) else False


def second_factor_met(grant: Grant, user: Any) -> bool:
    """What ``grant`` asks of a second factor is met: it asks none (not ``mfa_required``), or
    ``user`` is active and passed MFA in this session."""
    return not grant.mfa_required or (_active_user(user) and _verified(user))


#: what this request's querysets built once for a person (``request_memo``); None outside a request
_request_memo: ContextVar[dict[Any, Any] | None] = ContextVar("lightbox_policy_request_memo", default=None)
_Built = TypeVar("_Built")


def _reads_only(sql: str) -> bool:
    return sql.lstrip("( \n").upper().startswith("SELECT")


@contextmanager
def request_memo() -> Iterator[None]:
    """The scope of one request (``apps.sharing.middleware.PolicyMemoMiddleware``) in which the
    filters that scope a person's rows to their live grants (``_live_grants_showing_cases``,
    behind ``granted_case_ids``, ``granted_study_ids`` and every ``visible_to``) are built once,
    not at each queryset of the page: building them (subqueries, not rows) cost more than many
    of the queries they go into. Nothing read is kept: they stay subqueries that the database
    runs with each query, so a revocation or a role change in the request is seen at once; but
    they hold the moment they were built at, so any write on the database connection during the
    request (a share made, renewed, revoked; a membership changed; an audit event) empties the
    memo, and what is asked after it is built afresh (tests/sharing/test_policy_memo.py). Two
    reads are kept in it the same way, because the middleware, the page and its navigation each
    asked them again: the person's active memberships (``memberships_read``: the switcher, the
    access gate, the roles every decision starts from) and the live grants addressed to them
    (``_live_grants_held``: the idle limit, the patient portal's gate, the "Shares" link); read
    at the first question, until the request's next write, never past the request: a
    revocation or a role change made elsewhere takes effect on the next request, as every
    decision's does. A contextvar, set and reset around the request: never shared between
    requests or threads, and none (each call builds or reads its own) in a task, a command or a
    test that makes no request."""
    from django.db import connection

    memo: dict[Any, Any] = {}
    token = _request_memo.set(memo)

    def forget_on_write(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not _reads_only(sql):
            memo.clear()
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(forget_on_write):
            yield
    finally:
        _request_memo.reset(token)


@contextmanager
def read_afresh() -> Iterator[None]:
    """Decisions made in the block read everything afresh, none of it from the request's memo
    (``request_memo``): a decision made again after long work in the request (a download's
    package built) must see a membership ended or a share revoked meanwhile by another request,
    which no write of this request's emptied the memo for."""
    token = _request_memo.set(None)
    try:
        yield
    finally:
        _request_memo.reset(token)


def _per_request(key: tuple[Any, ...], build: Callable[[], _Built]) -> _Built:
    """``build()``, once per request for ``key`` (``request_memo``); afresh outside one."""
    memo = _request_memo.get()
    if memo is None:
        return build()
    if key not in memo:
        memo[key] = build()
    return memo[key]


def _live_grants_showing_cases(user: User) -> QuerySet[Grant]:
    """The live grants addressed to ``user`` that show their case's rows (``granted_case_ids``,
    ``granted_study_ids``): a grant that gives no case page (a patient-education share) shows
    none of them, nor a tumor board's grant its holder no longer takes part in boards under
    (``board_grants_refused``), nor a grant of an organization its holder is a patient of
    (``patient_grants``: it gives them the education copy only, on the patient portal). Built
    once per request (``request_memo``): callers narrow it (``filter``, ``values``), never
    evaluate it, so that the one built is never read as rows."""
    from apps.sharing.models import Grant

    return _per_request(("live_grants_showing_cases", user.pk), lambda: (
        Grant.objects.live().addressed_to(user).exclude(use_case__in=use_cases_without(Action.VIEW_CASE))
        .exclude(board_grants_refused(user)).exclude(patient_grants(user))))


def _board_organization_ids(user: Any) -> QuerySet[Membership]:
    """A subquery of the organizations in which ``user`` may take part in tumor boards: an active
    membership whose role is one of ``BOARD_PARTICIPANT_ROLES`` (not a patient account)."""
    from apps.cases.models import BOARD_PARTICIPANT_ROLES

    return Membership.objects.filter(user=user, is_active=True,
                                     role__in=BOARD_PARTICIPANT_ROLES).values("organization_id")


def board_grants_refused(user: Any) -> Q:
    """A filter of the grants that give ``user`` nothing because they came from a tumor board's
    meeting (``GrantSource.BOARD``) and ``user`` no longer takes part in boards in its
    organization (``_board_organization_ids``), as ``_grant_refusal`` decides: for the querysets
    that list what grants show, so that they list no more than ``can`` gives."""
    from apps.sharing.models import GrantSource

    return Q(source=GrantSource.BOARD) & ~Q(organization_id__in=_board_organization_ids(user))


def _board_grant_refused(grant: Grant, user: Any, *, roles: dict[int, str] | None = None) -> bool:
    """Whether ``grant`` came from a tumor board's meeting and ``user`` holds no role that takes
    part in boards in its organization now (``BOARD_PARTICIPANT_ROLES``: an active membership,
    not a patient account). Its meeting gave it to a participant; ``board_start`` leaves patient
    accounts out because such a grant shows them every case on the board, other patients' too.
    Read at each decision, as expiry is: a participant made a patient account during the meeting
    kept every case of the board until it ended (found by review); one whose membership ended
    is refused too (those grants are revoked as well: ``grants_end_for_member``). ``roles``:
    the user's active memberships (``_Facts.roles``), when read already."""
    from apps.cases.models import BOARD_PARTICIPANT_ROLES
    from apps.sharing.models import GrantSource

    if grant.source != GrantSource.BOARD:
        return False
    if not _active_user(user):
        return True
    if roles is None:
        roles = _active_roles(user)
    return roles.get(grant.organization_id) not in BOARD_PARTICIPANT_ROLES


def granted_case_ids(user: User, *, whole_case: bool = False) -> QuerySet:
    """A subquery of the ids of cases on which ``user`` holds a live grant (as grantee or member
    of the grantee group); with ``whole_case``, only grants that name no studies (rows that span
    a case's studies, such as uploads, follow those)."""
    from apps.sharing.models import Grant

    if not _active_user(user):
        return Grant.objects.none().values("case_id")
    live = _live_grants_showing_cases(user)
    if whole_case:
        live = live.filter(studies__isnull=True)
    return live.values("case_id")


def granted_study_ids(user: User) -> QuerySet:
    """A subquery of the ids of studies ``user`` may see through live grants: every study of a
    case a whole-case grant covers, plus the named studies of study-scoped grants. Study lists
    should use this rather than ``granted_case_ids`` so a one-study share shows one study."""
    from django.db.models import Q

    from apps.imaging.models import Study

    if not _active_user(user):
        return Study.objects.none().values("id")
    live = _live_grants_showing_cases(user)
    whole_cases = live.filter(studies__isnull=True).values("case_id")
    named = live.filter(studies__isnull=False).values("studies")
    return Study.objects.filter(Q(case_id__in=whole_cases) | Q(id__in=named)).values("id")


def boards_seen_as_participant(user: User) -> QuerySet:
    """A subquery of the ids of the tumor boards ``user`` sees as one of their participants,
    beyond those their role shows them (staff holding VIEW_CASE in the board's organization:
    ``apps.cases.models.BoardSessionQuerySet``):

    - a live board while a grant its meeting gave them is live and they are an active member of
      its organization in a role that takes part in boards (``BOARD_PARTICIPANT_ROLES``, as
      ``_grant_refusal`` asks of those grants): not past the review window of a board nobody
      ended, nor once their membership ended (which revokes those grants), nor once they were
      made a patient account there (found by review);
    - an ended board whose meeting gave them access (a grant of it addressed to them), while they
      are an active member of its organization in a role that takes part in boards
      (``BOARD_PARTICIPANT_ROLES``): it stays in their list, and its page says that the meeting,
      and their access with it, ended. Not once their membership ended (the revoked grants stay).
      A live board past its review window, which nobody ended, is ended (``board_ended``): its
      grants expired, and it was a 404 to them as if it had never been.

    Seeing a board gives nothing of its cases: their pages, images, notes, documents and
    downloads are decided on grants (``can``), and ending the meeting revoked its own."""
    from apps.cases.models import BoardSession, BoardState, board_ended
    from apps.sharing.models import Grant

    if not _active_user(user):
        return BoardSession.objects.none().values("id")
    now = timezone.now()
    mine = Grant.objects.addressed_to(user).filter(board_sessions__participants=user)
    # in either state, only while they take part in boards there (a patient account does not)
    member_of = _board_organization_ids(user)
    return BoardSession.objects.filter(
        Q(state=BoardState.LIVE, id__in=mine.live(now).values("board_sessions"))  # expire as the window ends
        | (board_ended(now) & Q(id__in=mine.values("board_sessions"))),
        organization_id__in=member_of,
    ).values("id")


def sees_board_participants(user: Any, board: Any, *, facts: _Facts | None = None) -> bool:
    """Whether ``user``, who sees the tumor board ``board`` (``BoardSessionQuerySet``), is shown
    who takes part in it (its participants' names and e-mail addresses): staff who see cases in
    its organization (VIEW_CASE by their role) always; its other participants (outside
    consultants) while the meeting is not ended. Once it ended they still find it
    (``boards_seen_as_participant``) but no longer who else took part: people of other hospitals'
    addresses would be shown to each for as long as they stay members. ``facts``: as for ``can``."""
    if not board.has_ended:  # ended, or past its review window
        return True
    return sees_board_cases_by_role(user, board, facts=facts)


def sees_board_cases_by_role(user: Any, board: Any, *, facts: _Facts | None = None) -> bool:
    """Whether ``user`` sees the cases of the tumor board ``board`` through their role (staff
    holding VIEW_CASE in its organization), not only through the grants its meeting gave: once
    the meeting ended, its page tells those whose access came from the board alone that it ended
    (and to ask the host), and staff that they still open its cases (found by QA: staff
    participants were told to ask the host). ``facts``: as for ``can``."""
    facts = _facts_of(user, facts)
    return _active_user(facts.user) and _role_allows(facts.user, Action.VIEW_CASE, board, facts)


def _case_id_of(obj: object) -> int | None:
    """The case an object belongs to: itself, its ``case_id``, or its study's case (series,
    instances, renditions of a study)."""
    from apps.cases.models import Case

    if isinstance(obj, Case):
        return obj.pk
    if hasattr(obj, "case_id"):
        return obj.case_id  # type: ignore[attr-defined]
    if getattr(obj, "study_id", None) is not None:
        return getattr(obj.study, "case_id", None)  # type: ignore[attr-defined]
    return None


def _study_id_of(obj: object) -> int | None:
    if type(obj).__name__ == "Study" and type(obj).__module__.startswith("apps.imaging"):
        return obj.pk  # type: ignore[attr-defined]
    return getattr(obj, "study_id", None)


def _grants_of(actor: Any, case_id: int, now: datetime, *, expired_since: datetime | None = None) -> list[Grant]:
    """Live grants of the case that this actor holds: addressed to the user, or behind an opened
    anonymous link that is itself live (not revoked, not locked, past its not-before time).

    With ``expired_since``: instead the grants held the same way that expired after that time,
    neither revoked nor of a closed case (only ``download_decide`` asks, to resume a transfer)."""
    return _grants_held(actor, {case_id}, now, expired_since=expired_since).get(case_id, [])


def _grants_held(actor: Any, case_ids: set[int], now: datetime, *,
                 expired_since: datetime | None = None) -> dict[int, list[Grant]]:
    """``_grants_of`` for several cases at once (by case id), in two or three queries whatever
    their number; the grants' named studies come with them (``_study_scope`` reads those)."""
    from django.db.models import prefetch_related_objects

    from apps.sharing.models import Grant, ShareLink

    def usable(grant: Grant) -> bool:
        if expired_since is None:
            return grant.is_live(now)
        return (grant.revoked_at is None and grant.case.status == "open"
                and expired_since < grant.expires_at <= now)

    grants: list[Grant] = []
    user = _user_of(actor)
    if _active_user(user):
        held = Grant.objects.addressed_to(user).filter(case_id__in=case_ids).select_related("case__patient")
        held = held.live(now) if expired_since is None else held.filter(
            revoked_at__isnull=True, case__status="open", expires_at__gt=expired_since, expires_at__lte=now)
        grants += list(held)
    if isinstance(actor, LinkHolder) and actor.link_ids:
        # switching anonymous links off for the organization stops opened ones too
        links = (ShareLink.objects.filter(pk__in=actor.link_ids, anonymous=True, revoked_at__isnull=True,
                                          locked_at__isnull=True, grant__case_id__in=case_ids,
                                          organization__anonymous_links_enabled=True)
                 .select_related("grant", "grant__case__patient"))
        grants += [link.grant for link in links
                   if (link.not_before is None or link.not_before <= now) and usable(link.grant)]
    prefetch_related_objects(grants, "studies")
    by_case: dict[int, list[Grant]] = {}
    for grant in grants:
        by_case.setdefault(grant.case_id, []).append(grant)
    return by_case


def _study_scope(grant: Grant) -> set[int] | None:
    """Ids of the studies a grant names, or None when it covers its whole case."""
    if grant.pk is None:
        return None  # an unsaved grant (the share review's) names no studies yet
    studies = getattr(grant, "studies", None)
    if studies is None:
        return None
    if "studies" in getattr(grant, "_prefetched_objects_cache", {}):
        ids = {study.pk for study in studies.all()}
    else:
        ids = set(studies.values_list("pk", flat=True))
    return ids or None


def patient_rule_applies(*, use_case: str, holder: Any, organization_id: int,
                         roles: dict[int, str] | None = None, by_record: set[int] | None = None) -> bool:
    """Whether a share of ``use_case`` of ``organization_id``'s case, held by ``holder`` (a user, or
    None: an anonymous link's holder, an address not yet an account), is one a patient holds: a
    patient-education share, whoever holds it, or any share held by a patient account
    (``_downloads_as_patient``). Its studies are then only those whose images carry the case's MRN
    as their patient ID (``held_back_from_patient``). ``roles``, ``by_record``: as for
    ``_downloads_as_patient``."""
    return use_case == UseCase.PATIENT_EDUCATION or _downloads_as_patient(holder, organization_id, roles=roles,
                                                                          by_record=by_record)


#: why a patient's share gives its holder nothing (``grants_held_back_entirely``): their account is
#: not the one the case's patient's invitation linked to them (``is_case_patients_account``)
NOT_THE_PATIENT = "not_the_patient"


def patients_linked_to(user_ids: Iterable[int]) -> dict[int, set[int]]:
    """For each of ``user_ids``, the patients (``cases.Patient`` ids) their account is linked to: the
    link a patient invitation makes when it is accepted (apps.accounts: the invitation from one of
    the patient's cases names the patient; the account that accepted it is theirs). Read live, one
    query."""
    from apps.accounts.models import Invitation, InvitationKind

    ids = list(user_ids)
    found: dict[int, set[int]] = {}
    if not ids:
        return found
    for user_id, patient_id in Invitation.objects.filter(
            kind=InvitationKind.PATIENT, accepted_by_id__in=ids, accepted_at__isnull=False,
            patient__isnull=False).values_list("accepted_by_id", "patient_id"):
        found.setdefault(user_id, set()).add(patient_id)
    return found


def is_case_patients_account(user: Any, case: Any, *, linked: set[int] | None = None) -> bool:
    """Whether ``user`` is the account linked to ``case``'s patient (``patients_linked_to``): the
    only holder a patient's share (``patient_rule_applies``) gives anything to. ``linked``: the
    user's linked patients, when read already (``_Facts.linked_patient_ids``)."""
    if not _active_user(user) or getattr(case, "patient_id", None) is None:
        return False
    if linked is None:
        linked = patients_linked_to([user.pk]).get(user.pk, set())
    return case.patient_id in linked


def patient_education_recipient_refused(*, case: Any, person: Any, email: str = "") -> bool:
    """Whether a patient-education share of ``case`` may not go to ``person`` (an active account, or
    None: an address with no account, ``email``): it goes only to the case's patient, through the
    account their invitation linked to them (``is_case_patients_account``), or to an address the
    case's patient was invited at, whose invitation waits to be accepted (accepting it makes that
    link). Any other person would be given nothing (``_held_back_from``): another patient's account
    would otherwise have listed and downloaded this patient's images (found by QA)."""
    from apps.accounts.models import Invitation, InvitationKind

    if person is not None:
        return not is_case_patients_account(person, case)
    if not email:
        return False  # no recipient yet: the form asks for one
    return not Invitation.objects.filter(
        kind=InvitationKind.PATIENT, patient_id=case.patient_id, email__iexact=email.strip(),
        accepted_at__isnull=True, revoked_at__isnull=True, locked_at__isnull=True,
        expires_at__gt=timezone.now()).exists()


def held_back_from_patient(*, case: Any, studies: Iterable[Any]) -> list[str | None]:
    """For each of ``studies`` (of ``case``), why a patient is never given it, or None when they may
    be: the case page's patient-ID flag (``apps.cases.selectors.patient_id_flags``: OTHER_PATIENT,
    the patient ID in its images is not the case's MRN; NO_PATIENT_ID, they carry none). The one
    rule, read live from the studies as they are now (a study attached after a share was made is
    decided as one attached before): a patient holding a share (``patient_rule_applies``) never
    sees, views nor downloads such a study, whatever the share names (``_grant_refusal``), the
    patient portal lists none of them (not even how many), and the share review names them as
    held back; a share all of whose studies are (``grants_held_back_entirely``) is said to be
    checked by the care team on the portal, and to give its patient nothing yet on the case page.
    Staff and outside consultants are not concerned: the case page warns them."""
    from apps.cases.selectors import patient_id_flags

    return patient_id_flags(case=case, patient_ids=[study.patient_id for study in studies])


class _HolderReads:
    """What ``grants_give_holders`` and ``grants_held_back_entirely`` read of the people who hold
    a list of grants (their active memberships, ``_patient_orgs_by_record``, ``patients_linked_to``),
    each read once for both when a page asks both about the same grants
    (``grants_give_and_held_back``): they read the same rows. Kept for that one call only."""

    def __init__(self) -> None:
        self._roles: dict[int, dict[int, str]] = {}
        self._by_record: dict[int, set[int]] = {}
        self._linked: dict[int, set[int]] = {}

    @staticmethod
    def _read(known: dict[int, Any], user_ids: Iterable[int], read: Callable[[set[int]], dict[int, Any]],
              empty: Callable[[], Any]) -> dict[int, Any]:
        ids = set(user_ids)
        if wanted := ids - known.keys():
            found = read(wanted)
            known.update({pk: found.get(pk, empty()) for pk in wanted})
        return {pk: known[pk] for pk in ids}

    def roles(self, user_ids: Iterable[int]) -> dict[int, dict[int, str]]:
        """Each one's role by organization (active memberships), in one query."""
        def read(wanted: set[int]) -> dict[int, dict[int, str]]:
            found: dict[int, dict[int, str]] = {}
            for user_id, org_id, role in Membership.objects.filter(user_id__in=wanted, is_active=True).values_list(
                    "user_id", "organization_id", "role"):
                found.setdefault(user_id, {})[org_id] = role
            return found
        return self._read(self._roles, user_ids, read, dict)

    def by_record(self, user_ids: Iterable[int]) -> dict[int, set[int]]:
        return self._read(self._by_record, user_ids, _patient_orgs_by_record, set)

    def linked(self, user_ids: Iterable[int]) -> dict[int, set[int]]:
        return self._read(self._linked, user_ids, patients_linked_to, set)


def grants_give_and_held_back(grants: Iterable[Grant], *, now: datetime | None = None,
                              ) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """For each of ``grants``, in order: what it gives its holder (``grants_give_holders``) and why
    its patient is given none of its studies (``grants_held_back_entirely``), the two answers of a
    page's list of who has access, reading the holders' memberships and what made them patients
    once for both (``_HolderReads``)."""
    grants = list(grants)
    reads = _HolderReads()
    return list(zip(grants_give_holders(grants, now=now, reads=reads),
                    grants_held_back_entirely(grants, reads=reads), strict=True))


def grants_held_back_entirely(grants: Iterable[Grant], *, holder: Any = None,
                              reads: _HolderReads | None = None) -> list[tuple[str, ...]]:
    """For each of ``grants``, in order: why its patient is given none of the studies it covers
    because every one of them is held back (``held_back_from_patient``, the one rule): the
    reasons found among them (OTHER_PATIENT, NO_PATIENT_ID, in that order), or () when it is not
    a patient's share (``patient_rule_applies``), covers no study yet (a case with none), or
    gives its patient at least one of them. What it covers: the studies it names, else its
    case's latest versions (as the share review lists them, ``studies_held_back_from_patient``;
    one of the patient's own still being made is not held back: the patient portal says it is
    being prepared). ``holder``: who holds them all (the patient portal's patient); None: each
    grant's named person (an inactive account holds nothing: ()), or none (a group's, an
    address's, a link's holder), as ``grants_give_holders`` reads them. For the staff's "who
    has access" (the patient sees nothing yet, and why) and the patient portal (the care team
    checks the images, not "being prepared"). Three queries at most whatever their number (the
    holders' memberships and what made them patients, ``_patient_orgs_by_record``; the whole-case
    grants' studies). Decides nothing: ``can`` does."""
    from django.db.models import prefetch_related_objects

    from apps.cases.selectors import NO_PATIENT_ID, OTHER_PATIENT
    from apps.imaging.models import Study

    grants = list(grants)
    saved = [grant for grant in grants if grant.pk is not None]
    prefetch_related_objects(saved, "studies", "case__patient", "grantee")
    holders = [holder if holder is not None else grant.grantee if grant.grantee_id is not None else None
               for grant in grants]
    # whose role decides (a share other than a patient-education one is a patient's by its holder)
    asked = {h.pk for g, h in zip(grants, holders, strict=True)
             if g.use_case != UseCase.PATIENT_EDUCATION and _active_user(h)}
    reads = reads or _HolderReads()
    roles = reads.roles(asked)
    by_record = reads.by_record(asked)
    concerned = [not (h is not None and not _active_user(h)) and patient_rule_applies(
        use_case=g.use_case, holder=h, organization_id=g.organization_id,
        roles=roles.get(h.pk, {}) if h is not None else None,
        by_record=by_record.get(h.pk, set()) if h is not None else None)
        for g, h in zip(grants, holders, strict=True)]
    whole_case = {g.case_id for g, c in zip(grants, concerned, strict=True) if c and _study_scope(g) is None}
    of_case: dict[int, list[Any]] = {}
    if whole_case:
        for study in (Study.objects.filter(case_id__in=whole_case).latest_versions()
                      .only("pk", "case_id", "patient_id")):
            of_case.setdefault(study.case_id, []).append(study)
    # a patient's share held by an account not linked to its case's patient gives them nothing
    linked = reads.linked({h.pk for h, c in zip(holders, concerned, strict=True) if c and h is not None})
    answers: list[tuple[str, ...]] = []
    for grant, is_concerned, held_by in zip(grants, concerned, holders, strict=True):
        if not is_concerned:
            answers.append(())
            continue
        if held_by is not None and not is_case_patients_account(held_by, grant.case,
                                                                linked=linked.get(held_by.pk, set())):
            answers.append((NOT_THE_PATIENT,))
            continue
        studies = (of_case.get(grant.case_id, []) if _study_scope(grant) is None
                   else list(grant.studies.all()))  # type: ignore[attr-defined]
        flags = held_back_from_patient(case=grant.case, studies=studies)
        answers.append(tuple(f for f in (OTHER_PATIENT, NO_PATIENT_ID) if f in flags)
                       if flags and None not in flags else ())
    return answers


def _held_back_from(grant: Grant, action: Action, obj: object, *, user: Any, roles: dict[int, str] | None,
                    by_record: set[int] | None = None, describing: bool = False, facts: _Facts | None = None) -> bool:
    """Whether ``grant`` gives ``user`` nothing of ``obj`` because it is a patient's share
    (``patient_rule_applies``) and either ``user`` is not the account linked to the case's patient
    (``is_case_patients_account``: then nothing of it at all), or ``obj`` is, or is of, a study held
    back from a patient (``held_back_from_patient``); a download of the whole case when any of its
    studies is. ``facts``: what was read already about ``user``."""
    from apps.cases.models import Case

    if not patient_rule_applies(use_case=grant.use_case, holder=user, organization_id=grant.organization_id,
                                roles=roles, by_record=by_record):
        return False
    if not (describing and user is None) and not is_case_patients_account(
            user, grant.case, linked=facts.linked_patient_ids if facts is not None and _active_user(user) else None):
        # (a grant with no named holder, described only: a group's, an invitation's address, a link,
        # the share review's unsaved grant, is said to give what it gives the case's patient; each
        # use of it is still ``can``'s, which gives any other account nothing)
        # another patient's account (a share sent to the wrong patient): nothing of this case is
        # theirs, whatever the share names (found by QA: it listed and downloaded its studies)
        return True
    study_id = _study_id_of(obj)
    if study_id is None:
        if describing or not (isinstance(obj, Case) and action in DOWNLOAD_ACTIONS):
            return False
        from apps.imaging.models import Study

        studies = Study.objects.filter(case_id=obj.pk).latest_versions().only("pk", "patient_id")
    else:
        is_study = type(obj).__name__ == "Study" and type(obj).__module__.startswith("apps.imaging")
        study = obj if is_study else getattr(obj, "study", None)  # a series, an instance, a rendition
        studies = [study] if study is not None else []
    return any(flag is not None for flag in held_back_from_patient(case=grant.case, studies=studies))


class GrantRefusal(StrEnum):
    """Why a grant does not cover an action on an object (``download_refusal`` tells pages)."""

    SECOND_FACTOR = "second_factor"  # it is marked mfa_required and MFA was not passed in this session
    LIMIT_REACHED = "limit_reached"  # its downloads are used up
    #: an anonymous link's share naming the original, which its organization does not allow on
    #: this link (now: ``anonymous_original_refusal_of``)
    ANONYMOUS_ORIGINAL = "anonymous_original"
    #: an image whose pixels may identify its patient (``Instance.pixels_may_identify``) on an
    #: anonymous link's share that asks for no second factor (``withholds_identifying_pixels``)
    IDENTIFYING_PIXELS = "identifying_pixels"
    NOT_INCLUDED = "not_included"    # it does not give this (the rendition, the study, the permission)
    NO_ACCESS = "no_access"          # it is not live, or of another case; or no grant at all


#: which reason a page gives when several grants refuse: first what the actor can do something
#: about (pass MFA), then what their care team can (the limit, the share's scope)
_REFUSAL_ORDER = (GrantRefusal.SECOND_FACTOR, GrantRefusal.LIMIT_REACHED, GrantRefusal.ANONYMOUS_ORIGINAL,
                  GrantRefusal.IDENTIFYING_PIXELS, GrantRefusal.NOT_INCLUDED, GrantRefusal.NO_ACCESS)


def grant_covers(grant: Grant, action: Action | str, obj: object, *, user: Any = None,
                 rendition: str | None = None, now: datetime | None = None, facts: _Facts | None = None) -> bool:
    """Whether one grant covers ``action`` on ``obj`` right now (see the module docstring).
    ``facts``: what was read already about ``user`` (``_Facts``), so as not to read it again."""
    return _grant_refusal(grant, action, obj, user=user, rendition=rendition, now=now, facts=facts) is None


def _grant_refusal(grant: Grant, action: Action | str, obj: object, *, user: Any = None,
                   rendition: str | None = None, now: datetime | None = None,
                   facts: _Facts | None = None, reach_only: bool = False,
                   second_factor_passed: bool = False, describing: bool = False) -> GrantRefusal | None:
    """The one rule of ``grant_covers``: None when the grant covers ``action`` on ``obj``, else
    the first reason it does not. With ``reach_only`` (``may_know``), only whether the grant
    reaches ``obj`` at all (live, of its case, its second factor passed, ``obj`` in its studies),
    whatever it gives there. With ``second_factor_passed`` (``grants_give_holders`` only, which
    says what a grant gives and decides nothing), its second factor is taken as passed. With
    ``describing`` (``_gives``, which decides nothing either), a whole case's download is what it
    gives on the studies a patient is given (the others are held back: ``held_back_from_patient``,
    which the share review lists), not refused for them as a download of it is."""
    from apps.sharing.usecases import RENDITION_PERMISSION

    action = Action(action)
    now = now or timezone.now()
    if not grant.is_live(now) or _case_id_of(obj) != grant.case_id:
        return GrantRefusal.NO_ACCESS
    if _board_grant_refused(grant, user, roles=facts.roles if facts is not None else None):
        return GrantRefusal.NO_ACCESS  # a tumor board's, and its holder no longer takes part in boards there
    if not (second_factor_passed or second_factor_met(grant, user)):
        return GrantRefusal.SECOND_FACTOR
    scope = _study_scope(grant)
    if scope is not None:
        study_id = _study_id_of(obj)
        if study_id is None:
            # case-level: the case's page and the list of its (named) studies; never a whole-case
            # download, nor a row of the case tied to none of its studies (its reports and
            # attachments, which may be about the others: apps.cases.models.AttachmentQuerySet)
            from apps.cases.models import Case

            if not (action == Action.VIEW_CASE or (action == Action.VIEW_IMAGES and isinstance(obj, Case))):
                return GrantRefusal.NOT_INCLUDED
        elif study_id not in scope:
            return GrantRefusal.NOT_INCLUDED
    roles = facts.roles if facts is not None else None
    by_record = facts.patient_orgs_by_record if facts is not None and _patient_by_record_asked(user, grant,
                                                                                              roles) else None
    if _held_back_from(grant, action, obj, user=user, roles=roles, by_record=by_record, describing=describing,
                       facts=facts):
        # a patient's share never reaches a study whose images are not the case patient's by
        # their patient ID (or carry none): not a refusal to explain, it is not theirs to know of
        return GrantRefusal.NO_ACCESS
    if reach_only:
        return None
    if getattr(obj, "pixels_may_identify", False) and withholds_identifying_pixels(grant):
        # an image whose pixels may show who the patient is, on a link whoever holds its URL opens
        return GrantRefusal.IDENTIFYING_PIXELS
    if _use_case_refuses(grant, action, rendition):
        # its use case gives less than its permissions name (a patient-education share: the
        # education copy only, whoever holds it)
        return GrantRefusal.NOT_INCLUDED
    if _use_case_never_gives(UseCase.PATIENT_EDUCATION, action, rendition) and _downloads_as_patient(
            user, grant.organization_id, roles=roles, by_record=by_record):
        # a patient of the grant's organization is given what a patient-education share gives
        # (the education copy, on the patient portal) whatever the share: never its case page, the
        # viewer, previews or originals. Their other memberships (an invited consultant elsewhere)
        # do not change what they are here (found by review: a telehealth share opened the viewer)
        return GrantRefusal.NOT_INCLUDED
    if action in DOWNLOAD_ACTIONS:
        if grant.over_download_limit:
            return GrantRefusal.LIMIT_REACHED
        if rendition is not None:
            if grant.renditions and rendition not in grant.renditions:
                return GrantRefusal.NOT_INCLUDED
            if RENDITION_PERMISSION.get(rendition) not in grant.permissions:
                return GrantRefusal.NOT_INCLUDED
        elif action == Action.DOWNLOAD_ORIGINAL and grant.renditions and "original" not in grant.renditions:
            return GrantRefusal.NOT_INCLUDED
        if action == Action.DOWNLOAD_ORIGINAL and anonymous_original_refusal_of(grant) is not None:
            return GrantRefusal.ANONYMOUS_ORIGINAL
    if action == Action.VIEW_CASE:
        return None
    if any(action in PERMISSION_ACTIONS.get(p, ()) for p in grant.permissions):
        return None
    return GrantRefusal.NOT_INCLUDED


def anonymous_links_allowed(organization: Organization) -> bool:
    """Whether ``organization``'s cases may be shared through anonymous links at all (its switch,
    ``Organization.anonymous_links_enabled``, off by default: every link is then tied to a
    signed-in recipient). The share form offers an anonymous link, and the link's own terms (a
    use limit, a second factor, a passcode), only where it says yes."""
    return bool(organization.anonymous_links_enabled)


class AnonymousOriginalRefusal(StrEnum):
    """Why an anonymous link may not carry the identified original DICOM
    (``anonymous_original_refusal``)."""

    NOT_ALLOWED = "not_allowed"            # the organization's sharing policy does not allow it
    NO_SECOND_FACTOR = "no_second_factor"  # allowed, but the link asks for no passcode or birth date


def anonymous_original_refusal(*, allowed: bool, second_factor: str) -> AnonymousOriginalRefusal | None:
    """The one rule for the original DICOM on an anonymous link (whoever forwards its URL holds
    it): never unless the organization's sharing policy allows it (``allowed``:
    ``SharingPolicy.anonymous_allow_original``), and then only on a link with a second factor
    (``second_factor``: a ``SecondFactor`` value, "" for none). None when it may. Creating,
    extending and renewing such a share ask it (``services.share_terms``, the share form, the
    API), and so does every download of the original on one (``anonymous_original_refusal_of``,
    read live: turning the setting off stops the links at once)."""
    if not allowed:
        return AnonymousOriginalRefusal.NOT_ALLOWED
    if not second_factor:
        return AnonymousOriginalRefusal.NO_SECOND_FACTOR
    return None


def anonymous_original_refusal_of(grant: Grant, *, org_policy: Any = None) -> AnonymousOriginalRefusal | None:
    """``anonymous_original_refusal`` for a saved anonymous link's share that names the original
    (its download permission, and the original in its renditions or none named), as its
    organization's policy (``org_policy``, when read already) and its links are now: every one of
    its links must ask for a second factor. None for any other grant (nothing read)."""
    if (grant.pk is None or not grant.is_anonymous or "download_original" not in grant.permissions
            or (grant.renditions and "original" not in grant.renditions)):
        return None
    from apps.sharing.models import SharingPolicy

    if org_policy is None:
        org_policy = SharingPolicy.objects.filter(organization_id=grant.organization_id).first()
    allowed = bool(org_policy is not None and org_policy.anonymous_allow_original)
    factors = [link.second_factor for link in grant.links.all()] if allowed else [""]
    return next((refusal for factor in factors or [""]
                 if (refusal := anonymous_original_refusal(allowed=allowed, second_factor=factor)) is not None), None)


def withholds_identifying_pixels(grant: Grant) -> bool:
    """The one rule for images whose pixels may identify their patient (``Instance.
    pixels_may_identify``: text burned in, said or likely, or a face, as the de-identification
    screens them) on anonymous links (found by security review: a link showed every image): an
    anonymous link's share gives none of them (viewer frames and thumbnails, any rendition, any
    zip) unless every one of its links (not revoked) asks for a second factor (a passcode, the
    patient's birth date), as the identified original is given (``anonymous_original_refusal``).
    Whoever forwards such a link's URL holds it, and nobody is identified. A share to a person, a
    group or an address gives them as ever, and staff see them on their role. Reads the grant's
    links (asked only for such an image)."""
    if grant.pk is None or not grant.is_anonymous:
        return False
    links = [link for link in grant.links.all() if link.revoked_at is None]
    return not links or any(not link.second_factor for link in links)


def image_withheld(actor: Any, instance: Any, *, facts: _Facts | None = None) -> bool:
    """Whether ``actor`` may view the images of ``instance``'s study but not this one's, because
    its pixels may identify its patient and what gives them the study is an anonymous link
    without a second factor (``withholds_identifying_pixels``): the viewer says so in the image's
    place rather than stop. False for an image that may be shown, and for one refused with its
    study (that refusal is ``can``'s, as ever). ``facts``: as for ``can``."""
    if not getattr(instance, "pixels_may_identify", False):
        return False
    facts = _facts_of(actor, facts)
    return (not _decide(facts, Action.VIEW_IMAGES, instance)
            and _decide(facts, Action.VIEW_IMAGES, instance.study))


def may_know(actor: Any, obj: object, *, facts: _Facts | None = None) -> bool:
    """Whether ``actor`` may be told that ``obj`` (a case, a study, a row of one) exists, so that a
    refusal on it is a 403 rather than a 404: they may see its case (VIEW_CASE), or a live grant
    of theirs reaches it though it gives no case page (a patient-education share: the patient
    portal lists its studies, and a rendition it does not give is refused, not hidden). Gives
    nothing: every action on it is still ``can``'s. ``facts``: as for ``can``."""
    facts = _facts_of(actor, facts)
    if _decide(facts, Action.VIEW_CASE, obj):
        return True
    case_id = _case_id_of(obj)
    return case_id is not None and any(
        _grant_refusal(grant, Action.VIEW_CASE, obj, user=facts.user, now=facts.now, facts=facts,
                       reach_only=True) is None
        for grant in facts.grants_of(case_id))


def _org_id_of(obj: object) -> int:
    if isinstance(obj, Organization):
        return obj.pk
    org_id = getattr(obj, "organization_id", None)
    if org_id is None:
        raise TypeError(f"policy cannot place {type(obj).__name__} in an organization")
    return org_id


def memberships_read(user: Any) -> list[Membership]:
    """``user``'s active memberships with their organizations, by organization name (the
    switcher's order): read once per request (``request_memo``; afresh after a write in it, and
    at each call outside a request), for the switcher (``organizations.selectors.memberships_of``,
    the request's ``my_memberships``) and the roles the decisions start from (``_active_roles``),
    which read the same rows."""
    return list(_per_request(("memberships", user.pk), lambda: list(
        Membership.objects.filter(user=user, is_active=True).select_related("organization")
        .order_by("organization__name"))))


def _active_roles(user: Any) -> dict[int, str]:
    """The user's role in each organization where they hold an active membership."""
    if not _active_user(user):
        return {}
    return {m.organization_id: m.role for m in memberships_read(user)}


def role_in(user: User, organization_id: int) -> str | None:
    if not _active_user(user):
        return None
    return (
        Membership.objects.filter(user=user, organization_id=organization_id, is_active=True)
        .values_list("role", flat=True).first()
    )


def _downloads_as_patient(user: Any, organization_id: int, *, roles: dict[int, str] | None = None,
                          by_record: set[int] | None = None) -> bool:
    """Whether ``user`` is a patient of ``organization_id``, who is given under its grants only
    what a patient-education share gives (``USE_CASE_GIVES``: the education copy, on the patient
    portal; ``_grant_refusal``), whatever else they are elsewhere. Read live, at each decision:

    - a member there: a patient member (whatever their memberships elsewhere: an invited
      consultant of another organization is still this one's patient); their role there decides;
    - no member there: a member nowhere else than as a patient (the account
      ``apps.accounts.middleware`` keeps to the patient portal, whichever organization the grant
      comes from), or a patient by what their account accepted from it
      (``_patient_orgs_by_record``: a patient invitation, a patient-education share sent to them),
      whose membership there ended or never was.

    ``roles``: the user's active memberships (``_Facts.roles``), when read already; ``by_record``:
    ``_patient_orgs_by_record``'s organizations for the user, when read already."""
    if not _active_user(user):
        return False
    if roles is None:
        roles = _active_roles(user)
    if organization_id in roles:
        return roles[organization_id] == Role.PATIENT
    if roles and all(role == Role.PATIENT for role in roles.values()):
        return True
    if by_record is None:
        by_record = _patient_orgs_by_record([user.pk]).get(user.pk, set())
    return organization_id in by_record


def _patient_by_record_asked(user: Any, grant: Grant, roles: dict[int, str] | None) -> bool:
    """Whether deciding whether ``user`` is a patient of ``grant``'s organization reads
    ``_patient_orgs_by_record`` (``_downloads_as_patient``): an active user neither a member
    there nor a patient-only account; ``roles`` unknown: maybe."""
    if not _active_user(user):
        return False
    if roles is None:
        return True
    return grant.organization_id not in roles and not (roles and all(r == Role.PATIENT for r in roles.values()))


def _patient_orgs_by_record(user_ids: Iterable[int]) -> dict[int, set[int]]:
    """For each of ``user_ids``, the organizations whose patient their account is by what it
    accepted there, whatever its memberships now: a patient invitation (apps.accounts; its
    membership may have ended since), or a patient-education share addressed to it by name and not
    revoked (an account of no organization that accepted one sent to its e-mail address; a share
    revoked as sent to the wrong person makes nobody a patient). One query."""
    from apps.accounts.models import Invitation, InvitationKind
    from apps.sharing.models import Grant

    ids = list(user_ids)
    found: dict[int, set[int]] = {}
    if not ids:
        return found
    invited = Invitation.objects.filter(kind=InvitationKind.PATIENT, accepted_by_id__in=ids,
                                        accepted_at__isnull=False).values_list("accepted_by_id", "organization_id")
    educated = Grant.objects.filter(grantee_id__in=ids, use_case=UseCase.PATIENT_EDUCATION,
                                    revoked_at__isnull=True).values_list("grantee_id", "organization_id")
    # no ORDER BY in either part (a model's default ordering): SQLite refuses one in a UNION's parts
    for user_id, org_id in invited.order_by().union(educated.order_by()):
        found.setdefault(user_id, set()).add(org_id)
    return found


def patient_grants(user: Any) -> Q:
    """A filter of the grants of the organizations ``user`` is a patient of
    (``_downloads_as_patient``, the same rule as a query), which give them what a
    patient-education share gives only: for the querysets that list what grants show (cases,
    studies), so that they list no more than ``can`` gives. Nothing read here: subqueries."""
    from apps.accounts.models import Invitation, InvitationKind
    from apps.sharing.models import Grant

    mine = Membership.objects.filter(user=user, is_active=True)
    patient_of = mine.filter(role=Role.PATIENT)
    invited = Invitation.objects.filter(kind=InvitationKind.PATIENT, accepted_by=user, accepted_at__isnull=False)
    educated = Grant.objects.filter(grantee=user, use_case=UseCase.PATIENT_EDUCATION, revoked_at__isnull=True)
    return (Q(organization_id__in=patient_of.values("organization_id"))
            | (Q(Exists(patient_of)) & ~Q(Exists(mine.exclude(role=Role.PATIENT))))
            | ((Q(organization_id__in=invited.values("organization_id"))
                | Q(organization_id__in=educated.values("organization_id")))
               & ~Q(organization_id__in=mine.values("organization_id"))))


def patient_accounts() -> Q:
    """A filter of the accounts (``accounts.User``) that are, or were, a patient of some
    organization, whatever they are elsewhere: a patient membership, active or ended; or a patient
    by what the account accepted (``_patient_orgs_by_record``'s rule: a patient invitation, which
    links it to a case's patient, ``patients_linked_to``; a patient-education share addressed to it
    and not revoked). The Django admin, which shows every organization's accounts to an operator
    who cares for none of their patients, names such an account by its id only
    (apps.accounts.admin). Nothing read here: subqueries."""
    from apps.accounts.models import Invitation, InvitationKind
    from apps.sharing.models import Grant

    return (Q(Exists(Membership.objects.filter(user=OuterRef("pk"), role=Role.PATIENT)))
            | Q(Exists(Invitation.objects.filter(kind=InvitationKind.PATIENT, accepted_by=OuterRef("pk"),
                                                 accepted_at__isnull=False)))
            | Q(Exists(Grant.objects.filter(grantee=OuterRef("pk"), use_case=UseCase.PATIENT_EDUCATION,
                                            revoked_at__isnull=True))))


def _owner_ids(obj: object) -> set[int]:
    """Users who own an object: a grant's creator; a case's creator and responsible clinician
    (for objects of a case)."""
    from apps.cases.models import Case

    ids: set[int | None] = set()
    grant = obj if type(obj).__name__ == "Grant" else getattr(obj, "grant", None)
    if grant is not None:
        ids.add(grant.created_by_id)
    case = obj if isinstance(obj, Case) else getattr(obj, "case", None)
    if isinstance(case, Case):
        ids |= {case.created_by_id, case.responsible_clinician_id}
    return {i for i in ids if i is not None}


def _role_allows(user: Any, action: Action, obj: object, facts: _Facts | None = None) -> bool:
    org_id = _org_id_of(obj)
    role = facts.roles.get(org_id) if facts is not None else role_in(user, org_id)
    if role is None:
        return False
    if action in ROLE_ACTIONS[role]:
        return True
    needs = OWNER_NEEDS.get(action)
    return needs is not None and needs in ROLE_ACTIONS[role] and user.pk in _owner_ids(obj)


class _Facts:
    """What the policy reads from the database to decide for one actor, read once and shared by
    the decisions of one call: ``can`` (one decision) or ``can_each`` (a page's list). The user's
    active memberships; the grants the actor holds, by case (``_grants_held``); which group
    grants name the user. Never kept past that call (``request_facts``: past the page's request):
    a revocation, an expiry or a role change takes effect on the very next one, as the module
    promises."""

    #: the second factor the actor's grants ask for is taken as passed (``can_in_absence`` only)
    second_factor_passed = False

    def __init__(self, actor: Any, now: datetime, *, roles: dict[int, str] | None = None,
                 working_in: int | None = None, by_record: set[int] | None = None,
                 linked: set[int] | None = None) -> None:
        self.actor = actor
        self.user = _user_of(actor)
        self.now = now
        #: the organization the page's request works in (``working_in``): staff-side actions
        #: (``ACTIVE_ORGANIZATION_ACTIONS``) are decided on its objects, and on those of
        #: organizations the user is not a member of, only; None: any
        self.working_in = working_in
        if roles is not None:  # the user's active memberships, read already (``request_facts``)
            self.__dict__["roles"] = dict(roles) if _active_user(self.user) else {}
        if by_record is not None:  # ``_patient_orgs_by_record``'s, read already (for several people at once)
            self.__dict__["patient_orgs_by_record"] = set(by_record) if _active_user(self.user) else set()
        if linked is not None:  # ``patients_linked_to``'s, read already (for several people at once)
            self.__dict__["linked_patient_ids"] = set(linked) if _active_user(self.user) else set()
        self._held: dict[int, list[Grant]] = {}
        self._in_group: dict[int, bool] = {}
        self._pending: dict[int, bool] = {}
        self._as_user: _Facts | None = None

    @cached_property
    def roles(self) -> dict[int, str]:
        """The user's role by organization (active memberships; none for an inactive user)."""
        return _active_roles(self.user)

    @cached_property
    def patient_orgs_by_record(self) -> set[int]:
        """``_patient_orgs_by_record`` for the user (read only when a decision needs it)."""
        if not _active_user(self.user):
            return set()
        return _patient_orgs_by_record([self.user.pk]).get(self.user.pk, set())

    @cached_property
    def linked_patient_ids(self) -> set[int]:
        """``patients_linked_to`` for the user (read only when a decision needs it)."""
        if not _active_user(self.user):
            return set()
        return patients_linked_to([self.user.pk]).get(self.user.pk, set())

    def grants_of(self, case_id: int) -> list[Grant]:
        """``_grants_of(actor, case_id, now)``."""
        self.load_grants({case_id})
        return self._held[case_id]

    def load_grants(self, case_ids: set[int | None]) -> None:
        wanted = {c for c in case_ids if c is not None and c not in self._held}
        if wanted:
            found = _grants_held(self.actor, wanted, self.now)  # type: ignore[arg-type]
            self._held.update({c: found.get(c, []) for c in wanted})

    def in_group(self, grant: Grant) -> bool:
        """Whether the user is a member of ``grant``'s group."""
        self.load_groups([grant])
        return self._in_group[grant.pk]

    def load_groups(self, grants: list[Grant]) -> None:
        from apps.sharing.models import Grant

        self._load_per_grant(self._in_group, grants, lambda wanted: Grant.group_members.through.objects.filter(
            grant_id__in=wanted, user_id=self.user.pk))

    def _load_per_grant(self, known: dict[int, bool], grants: list[Grant], rows: Callable[[set[int]], Any]) -> None:
        """Fill ``known`` (grant id -> whether the user has a row of ``rows(ids)``) for the
        ``grants`` not in it yet, in one query; none for an inactive user, who has none."""
        wanted = {g.pk for g in grants if g.pk not in known}
        if not wanted:
            return
        found = set(rows(wanted).values_list("grant_id", flat=True)) if _active_user(self.user) else set()
        known.update({pk: pk in found for pk in wanted})

    def has_pending_request(self, grant: Grant) -> bool:
        """Whether a request of the user's own for the original DICOM of ``grant``'s case waits for
        a decision, under ``grant`` or under another share of theirs of the case
        (``pending_original_requests``): one request a person and case at a time."""
        self.load_pending([grant])
        return self._pending[grant.pk]

    def load_pending(self, grants: list[Grant]) -> None:
        wanted = [g for g in grants if g.pk not in self._pending]
        if not wanted:
            return
        found = (pending_original_requests(self.user, {g.case_id for g in wanted}, now=self.now)
                 if _active_user(self.user) else {})
        self._pending.update({g.pk: g.case_id in found for g in wanted})

    def for_user(self) -> _Facts:
        """The facts of the signed-in user alone, without the anonymous links the actor opened
        (what a grant's own recipient holds): itself, unless the actor is a LinkHolder."""
        if not isinstance(self.actor, LinkHolder):
            return self
        if self._as_user is None:
            # the same person's memberships: not read again when read already
            self._as_user = _Facts(self.user, self.now, working_in=self.working_in, roles=self.__dict__.get("roles"))
        return self._as_user

    def prepare(self, action: Action, objs: list[Any]) -> None:
        """Read at once what deciding ``action`` on each of ``objs`` will need."""
        from django.db.models import prefetch_related_objects

        case_ids = {_case_id_of(obj) for obj in objs}
        grants = [obj for obj in objs if type(obj).__name__ == "Grant"]
        if action in (Action.REQUEST_ORIGINAL, Action.RENEW_GRANT):
            self.for_user().load_grants(case_ids)
        else:
            self.load_grants(case_ids)
        if action is Action.REQUEST_ORIGINAL and grants:
            prefetch_related_objects(grants, "studies")
            self.for_user().load_groups([g for g in grants if g.grantee_id is None and not g.grantee_email])
            self.for_user().load_pending(grants)


def request_facts(request: HttpRequest | None, actor: Any = None) -> _Facts | None:
    """What the policy reads to decide for ``actor`` (``actor_for(request)`` when not given) in
    this request, to pass as ``facts=`` to each decision of a request that changes no grant or
    membership (a page's GET; the viewer's frames, series and heartbeat): the user's active
    memberships are the request's own (``request.my_memberships``, read once by
    apps.organizations.middleware), not read again; the actor's grants are read by the first
    decision that needs them and shared by the others. Kept on the request only, so a revocation,
    an expiry or a role change takes effect on the next request, as for ``can``. A view that
    changes grants or memberships decides afresh after doing so (it does not pass these). None
    without a request (a selector called from a task or a test): the decisions read afresh."""
    if request is None:
        return None
    actor = actor_for(request) if actor is None else actor
    kept: list[_Facts] = request.__dict__.setdefault("_lightbox_policy_facts", [])
    for facts in kept:
        if facts.actor == actor:
            return facts
    facts = decision_facts(request, actor)
    kept.append(facts)
    return facts


#: staff-side actions on an organization's objects (deciding a request for the original, and
#: asking for one under a share of its case, which writes a request, its event and notices there;
#: revoking, extending or renewing a share; sharing a case; editing, closing or reopening a case,
#: writing a note or attaching a document on it; editing, starting or ending a tumor board;
#: deleting, exporting de-identified or attaching a study; changing a membership), decided on a
#: page of someone who is a member of that organization only while it is the one they work in
#: (the header's switcher; ``working_in``): someone in two organizations decided one's requests,
#: and wrote on its cases, under the other's header, and its audit events went to a trail they
#: were not looking at. The page offers the switch (``organization_to_switch_to``). Whoever is not
#: staff there (an outside consultant with a share, invited as a consultant or not: no membership,
#: or one whose role acts for it in nothing, ``acts_for_organization``) is decided on as ever:
#: there is nothing to switch to. REQUEST_ORIGINAL is held by no role, so it makes no role staff;
#: it is here for a member of the share's organization working in another one, whose request was
#: made (and its event recorded) from under the other's header, where its shared case and its row
#: on "Shared with me" are not shown.
ACTIVE_ORGANIZATION_ACTIONS = frozenset({
    Action.DECIDE_ORIGINAL_REQUEST, Action.REQUEST_ORIGINAL, Action.MANAGE_GRANT, Action.RENEW_GRANT,
    Action.SHARE_CASE, Action.MANAGE_CASE, Action.ADD_NOTE, Action.ATTACH_DOCUMENT, Action.RUN_BOARD,
    Action.END_BOARD, Action.DELETE_STUDY, Action.UPLOAD_STUDY, Action.EXPORT_DEIDENTIFIED, Action.MANAGE_MEMBERS,
})


def acts_for_organization(role: str | None) -> bool:
    """Whether a membership of ``role`` makes its organization one the person works in for the
    active-organization rule (``ACTIVE_ORGANIZATION_ACTIONS``): its role holds one of those
    staff-side actions (``ROLE_ACTIONS``: the staff roles). An external consultant's or a
    patient's membership (an invitation's) holds none: whatever they do there is what a share
    gives them, decided as for an outside consultant who is no member there (6ca7505), and never
    asks them to switch away from the organization they are staff of."""
    return bool(ROLE_ACTIONS.get(role or "", frozenset()) & ACTIVE_ORGANIZATION_ACTIONS)


def working_in(request: HttpRequest | None) -> int | None:
    """The id of the organization a page's request works in (the header's switcher:
    ``request.organization``, apps.organizations.middleware); None without one, without a
    request, and for the API, which has no switcher (each call names its objects)."""
    from apps.core.api import is_api_request

    if request is None or is_api_request(request):
        return None
    org = getattr(request, "organization", None)
    return org.pk if org else None


def organizations_elsewhere(request: HttpRequest | None) -> list[Organization]:
    """The person's other organizations (active memberships in a staff role:
    ``acts_for_organization``) than the one the page's request works in: a page of the active
    organization lists none of their rows (shares, requests, notices, cases shared with them),
    which are reached by switching. Rows of an organization the person is not staff of (a share to
    an outside recipient, invited there as a consultant or not) are listed where they concern
    them, labelled with it: there is nothing to switch to. Empty without an active organization
    (``working_in``)."""
    active = working_in(request)
    if active is None:
        return []
    return [m.organization for m in getattr(request, "my_memberships", None) or []
            if m.is_active and m.organization_id != active and acts_for_organization(m.role)]


def organization_to_switch_to(request: HttpRequest, obj: object) -> Organization | None:
    """The organization of ``obj`` when the page's request works in another one and the person is
    an active member of it in a staff role (``organizations_elsewhere``): its page asks them to
    switch to it before showing or acting on it. None when ``obj`` is the active organization's,
    or of one they are not staff of (then its own decisions apply)."""
    org_id = _org_id_of(obj)
    return next((org for org in organizations_elsewhere(request) if org.pk == org_id), None)


def decision_facts(request: HttpRequest, actor: Any) -> _Facts:
    """What the policy reads to make one decision for ``actor`` in ``request``, and the checks
    that go with it (``facts=`` of ``can``, ``require``, ``download_decide``), in a request that
    then writes what such facts hold (a counted download: the grant's count, its download rows):
    the user's active memberships are the request's own (``request.my_memberships``), as for
    ``request_facts``, but these facts are not kept on the request. The caller decides with them
    before it writes and drops them: anything it asks after its write reads afresh."""
    user, signed_in = _user_of(actor), getattr(request, "user", None)
    memberships = getattr(request, "my_memberships", None)
    roles = None
    mine = _active_user(user) and _active_user(signed_in) and user.pk == signed_in.pk
    if memberships is not None and mine:
        roles = {m.organization_id: m.role for m in memberships if m.is_active}
    return _Facts(actor, timezone.now(), roles=roles, working_in=working_in(request) if mine else None)


def _facts_of(actor: Any, facts: _Facts | None) -> _Facts:
    """``facts`` when they are ``actor``'s (``request_facts``), else what is read afresh."""
    return facts if facts is not None and facts.actor == actor else _Facts(actor, timezone.now())


def can(actor: Any, action: Action | str, obj: object, *, rendition: str | None = None,
        facts: _Facts | None = None) -> bool:
    """True when ``actor`` (a User or a LinkHolder) may do ``action`` on ``obj``. The only
    function that says yes.

    First the user's role in the object's organization (plus owner rights); then, for objects of
    a case, a live grant held by the actor that covers the object. ``rendition`` (a
    usecases.Rendition value) narrows a download check to one rendition. ``facts``: the
    request's (``request_facts``), so as not to read again what the page's other decisions read."""
    return _decide(_facts_of(actor, facts), Action(action), obj, rendition=rendition)


def reader_label(actor: Any, action: Action | str, obj: object, *, facts: _Facts | None = None) -> str:
    """How the audit trail names whoever did ``action`` on ``obj`` (a reading ``can`` allowed), as
    the grant that allowed it holds it: "" (the signed-in user: ``audit.record`` names them) when
    their role or a grant addressed to them allows it, whatever anonymous links the browser session
    also opened; else ``link:<public id>`` of the opened links whose grants allow it (an anonymous
    link's holder). Found by review: a signed-in person's reading of a study of their own was
    recorded as a link holder's because the session held a link of another case. ``facts``: as
    for ``can``."""
    if not isinstance(actor, LinkHolder):
        return ""
    action = Action(action)
    facts = _facts_of(actor, facts)
    if _active_user(actor.user) and _decide(facts.for_user(), action, obj):
        return ""
    case_id = _case_id_of(obj)
    covering = [grant.pk for grant in (facts.grants_of(case_id) if case_id is not None else [])
                if grant_covers(grant, action, obj, user=facts.user, now=facts.now, facts=facts)]
    from apps.sharing.models import ShareLink

    links = sorted(ShareLink.objects.filter(pk__in=actor.link_ids, grant_id__in=covering)
                   .values_list("pk", "public_id"))
    return "link:" + ",".join(str(public) for _pk, public in links) if links else actor.label


def can_in_absence(user: Any, action: Action | str, obj: object) -> bool:
    """``can(user, action, obj)`` for a user who is not the one at this request, for what they did
    earlier and takes effect now (an invitation they sent, naming cases, accepted by its invitee:
    ``apps.accounts.services.invitation_accept``): whether they may still do it. The same
    decision, read afresh, except that the second factor their grants ask for is taken as passed:
    they passed it in their own session when they acted, and whether they have in someone else's
    is not asked. Their account being active, their role, their grants' life, scope and
    permissions are decided as ``can`` decides them; None (an account deleted since) may nothing."""
    if user is None:
        return False
    facts = _Facts(user, timezone.now())
    facts.second_factor_passed = True
    return _decide(facts, Action(action), obj)


def can_actions(actor: Any, actions: Iterable[Action | str], obj: object, *,
                facts: _Facts | None = None) -> dict[Action, bool]:
    """``can(actor, action, obj)`` for each of ``actions`` on one object (a page's buttons): the
    same decisions, made by the same code, with the actor's memberships and grants read once for
    all of them rather than once for each (once for the request with ``facts``)."""
    facts = _facts_of(actor, facts)
    return {Action(action): _decide(facts, Action(action), obj) for action in actions}


def can_each(actor: Any, action: Action | str, objs: Iterable[Any], *, rendition: str | None = None,
             facts: _Facts | None = None) -> list[bool]:
    """``can(actor, action, obj)`` for each of ``objs``, in order: the same decisions, made by the
    same code, with what they read from the database read once for all of them (a page listing
    many grants asks this, so its queries do not grow with the list). ``facts``: the request's
    (``request_facts``), as for ``can``."""
    objs = list(objs)
    action = Action(action)
    facts = _facts_of(actor, facts)
    facts.prepare(action, objs)
    return [_decide(facts, action, obj, rendition=rendition) for obj in objs]


def users_who_can(users: Iterable[Any], action: Action | str, obj: object) -> list[Any]:
    """Those of ``users`` who may do ``action`` on ``obj``, in order: ``can(user, action, obj)``
    for each, the same decisions made by the same code (read afresh, as ``can`` without
    ``facts``), with their active memberships read in one query for all of them rather than one
    each. Who is told of a new request for the original (``services._deciders``: every
    radiologist of the organization, inside the request's transaction) cost a query a person.
    An action that only a role gives (``_GRANT_ACTIONS``: deciding a request) reads nobody's
    grants; one a grant may give reads each user's grants of ``obj``'s case."""
    users = list(users)
    action = Action(action)
    now = timezone.now()
    roles: dict[int, dict[int, str]] = {}
    active = [u.pk for u in users if _active_user(u)]
    if active:
        for user_id, org_id, role in (Membership.objects.filter(user_id__in=active, is_active=True)
                                      .values_list("user_id", "organization_id", "role")):
            roles.setdefault(user_id, {})[org_id] = role
    return [user for user in users
            if _decide(_Facts(user, now, roles=roles.get(user.pk, {})), action, obj)]


def notices_naming(user: Any, notices: Iterable[Any], *, facts: _Facts | None = None) -> list[bool]:
    """For each of ``notices`` (``user``'s Notification rows), whether it may name the tumor board
    or case it is about by its title (``Notification.message_shown``, which names the board when
    it has one, else the case): only while ``user`` still sees it, the board as their boards list
    shows it (``BoardSessionQuerySet.visible_to``: staff by their role, its participants while
    ``boards_seen_as_participant``), the case by VIEW_CASE (``can_each``). A radiologist who
    decided requests for a case's original DICOM and then left the organization was shown the
    case's title as renamed since, which may name the patient (found by review); so was someone
    whose share ended. At most one query for the cases and one for the boards, whatever their
    number. ``facts``: as for ``can``."""
    from apps.cases.models import BoardSession

    notices = list(notices)
    about_board = [n.board_id is not None and n.board is not None for n in notices]
    board_ids = {n.board_id for n, on_board in zip(notices, about_board, strict=True) if on_board}
    boards_seen = set(BoardSession.objects.visible_to(user).filter(pk__in=board_ids)
                      .values_list("pk", flat=True)) if board_ids else set()
    cases = {n.case_id: n.case for n, on_board in zip(notices, about_board, strict=True)
             if not on_board and n.case_id is not None and n.case is not None}
    cases_seen = {case.pk for case, may in zip(cases.values(), can_each(user, Action.VIEW_CASE, cases.values(),
                                                                          facts=facts), strict=True) if may}
    return [n.board_id in boards_seen if on_board else n.case_id in cases_seen
            for n, on_board in zip(notices, about_board, strict=True)]


def grants_naming_case(user: Any, grants: Iterable[Grant], *, facts: _Facts | None = None) -> list[bool]:
    """For each of ``grants`` (``user``'s rows of "Shared with me"), whether the row may name its
    case by the case's title as it is now: only while ``user`` may know the case (``may_know``:
    they see it, VIEW_CASE, or a live grant of theirs reaches it, a patient-education share on the
    portal), as a notice names its case only while it is seen (``notices_naming``). Otherwise (the
    share ended, and nothing else of theirs reaches the case) the row names it as it was when the
    share ended (``Grant.case_title_at_end``): a case renamed since, whose new title may name the
    patient, was listed under that new title (found by review). At most the queries of one
    ``can_each`` for the page's cases. ``facts``: as for ``can``."""
    grants = list(grants)
    facts = _facts_of(user, facts)
    cases = {g.case_id: g.case for g in grants}
    facts.prepare(Action.VIEW_CASE, list(cases.values()))
    known = {case_id for case_id, case in cases.items() if may_know(user, case, facts=facts)}
    return [g.case_id in known for g in grants]


def grants_ended_for_holder(user: Any, grants: Iterable[Grant], *, facts: _Facts | None = None) -> list[bool]:
    """For each of ``grants`` (``user``'s rows of "Shared with me", or of the API's list of
    grants received), whether it gives ``user`` nothing any more though it has not ended itself
    (neither revoked nor expired, its case open: live, or yet to start): the policy no longer
    lets it reach its case for them (``_grant_refusal``, asked as ``may_know`` asks it, at its
    start for one yet to start), as for a tumor board's grant to someone made a patient account
    there since (``_board_grant_refused``). Its holder's lists say it is no longer available to
    them, with no link and no title of the case as it is now: they said Active, linked to a case
    page that refused them, under the case's current title (found by review). A second factor
    not passed yet ends nothing (opening the case asks for it). A grant that ended is False: its
    own state says so. Decides on the facts' memberships (``facts``: as for ``can``); no query
    beyond them."""
    from django.db.models import prefetch_related_objects

    facts = _facts_of(user, facts)
    grants = list(grants)
    prefetch_related_objects(grants, "studies")  # what ``_study_scope`` reads: one query for them all
    ended = []
    for grant in grants:
        if grant.revoked_at is not None or grant.expires_at <= facts.now or grant.case.status != "open":
            ended.append(False)
            continue
        refusal = _grant_refusal(grant, Action.VIEW_CASE, grant.case, user=facts.user,
                                 now=max(facts.now, grant.starts_at), facts=facts, reach_only=True,
                                 second_factor_passed=True)
        ended.append(refusal == GrantRefusal.NO_ACCESS)
    return ended


def grants_told_of(user: Any, grants: Iterable[Grant], *, facts: _Facts | None = None) -> list[bool]:
    """For each of ``grants`` (the shares of a case that reach the recipient a share review names,
    ``selectors.live_shares_to``), whether ``user``, who shares the case, may be told of it (its
    use case and expiry): they may manage it (MANAGE_GRANT: staff whose role manages the
    organization's shares, who see them under "Who has access"), or they made it (My shares lists
    it). Nobody else: an outside consultant resharing under a grant, who never sees who holds
    shares of the case, learnt by typing any address whether that person did, of what kind and
    until when (found by review). ``facts``: as for ``can``."""
    grants = list(grants)
    me = _user_of(user)
    manages = can_each(user, Action.MANAGE_GRANT, grants, facts=facts)
    return [may or (_active_user(me) and grant.created_by_id == me.pk)
            for grant, may in zip(grants, manages, strict=True)]


def _document_of(case: Any) -> Any:
    """A document of ``case`` (unsaved): what may be decided on any of its reports and
    attachments, none of which is tied to a study (``apps.cases.models.AttachmentQuerySet``)."""
    from apps.cases.models import Attachment

    return Attachment(case=case, organization_id=case.organization_id)


def _in_another_of_theirs(facts: _Facts, obj: object) -> bool:
    """Whether ``obj`` is of another of the user's organizations (an active membership in a staff
    role: ``acts_for_organization``) than the one the page's request works in
    (``facts.working_in``): ``organization_to_switch_to``'s question, on the facts. False without
    a page's request (a service, a task, the API)."""
    if facts.working_in is None:
        return False
    org_id = _org_id_of(obj)
    return org_id != facts.working_in and acts_for_organization(facts.roles.get(org_id))


def _decide(facts: _Facts, action: Action, obj: object, *, rendition: str | None = None) -> bool:
    """``can(facts.actor, action, obj)``, reading through ``facts``."""
    user = facts.user
    if action in ACTIVE_ORGANIZATION_ACTIONS and _in_another_of_theirs(facts, obj):
        return False
    if action is Action.UPLOAD_STUDY and type(obj).__name__ == "Case":
        # studies go into a case only by the one rule the upload page offers cases by
        return upload_cases(user, obj, roles=facts.roles).filter(pk=getattr(obj, "pk", None)).exists()
    if action is Action.RUN_BOARD:
        return (_active_user(user) and getattr(obj, "host_id", None) == user.pk
                and _role_allows(user, Action.MANAGE_CASE, obj, facts))
    if action is Action.END_BOARD:
        # ending only takes access away: its host, or whoever may manage cases there
        return type(obj).__name__ == "BoardSession" and _active_user(user) and (
            _decide(facts, Action.RUN_BOARD, obj) or _role_allows(user, Action.MANAGE_CASE, obj, facts))
    if action is Action.ADD_NOTE:
        return type(obj).__name__ == "Case" and obj.is_open and (  # type: ignore[attr-defined]
            _decide(facts, Action.VIEW_IMAGES, obj) or _decide(facts, Action.MANAGE_CASE, obj))
    if action is Action.VIEW_DOCUMENTS:
        return type(obj).__name__ == "Case" and _decide(facts, Action.VIEW_IMAGES, _document_of(obj))
    if action is Action.ATTACH_DOCUMENT:
        return _decide(facts, Action.ADD_NOTE, obj) and _decide(facts, Action.VIEW_DOCUMENTS, obj)
    if action is Action.REQUEST_ORIGINAL:
        return type(obj).__name__ == "Grant" and _original_request_refusal(obj, facts.for_user()) is None  # type: ignore[arg-type]
    if action is Action.RENEW_GRANT:
        # renewing makes a new share (and hands its maker a new link): what creating one needs
        mine = facts.for_user()
        return (type(obj).__name__ == "Grant" and _active_user(user) and _decide(mine, Action.MANAGE_GRANT, obj)
                and _decide(mine, Action.SHARE_CASE, obj.case))  # type: ignore[attr-defined]
    if _active_user(user) and _role_allows(user, action, obj, facts):
        return True
    if action not in _GRANT_ACTIONS:
        return False  # no grant gives it (``_grant_refusal``): none of the actor's grants to read
    case_id = _case_id_of(obj)
    if case_id is None:
        return False
    return any(_grant_refusal(g, action, obj, user=user, rendition=rendition, now=facts.now, facts=facts,
                              second_factor_passed=facts.second_factor_passed) is None
               for g in facts.grants_of(case_id))


#: what makes the "Shares" page (apps.sharing.views.my_shares: the shares one made, the requests
#: for originals one decides, the link to the organization's sharing settings) worth a link for a
#: role: sharing cases, or setting how the organization shares
_SHARES_PAGE_ROLE_ACTIONS = frozenset({Action.SHARE_CASE, Action.MANAGE_ORGANIZATION})


def has_shares_page(user: Any, *, roles: Iterable[str] | None = None) -> bool:
    """Whether the "Shares" page has anything for ``user``, for the navigation's link to it:
    their role in one of their active organizations may share cases or set the sharing settings
    (``_SHARES_PAGE_ROLE_ACTIONS``); or they made shares the page lists (``made_grants_listed``:
    to revoke, extend or renew; a board's host makes them too); or a live grant addressed to them
    allows resharing (a permission that maps to SHARE_CASE). Decides no share: each is still ``can``'s.

    ``roles``: the user's roles in their active memberships, when read already (the request's
    ``my_memberships``). None for a role that shares; else the live grants addressed to them
    (``_live_grants_held``: none when the request read them already), the organizations of the
    shares they made (none: no more), and only when they made some outside the organizations
    whose cases their role shows them, whether a live grant of theirs shows such a case."""
    from apps.sharing.models import Grant

    if not _active_user(user):
        return False
    if roles is None:
        roles = _active_roles(user).values()
    if any(ROLE_ACTIONS.get(role, frozenset()) & _SHARES_PAGE_ROLE_ACTIONS for role in roles):
        return True
    # the live grants addressed to them first: the request read them already (the idle limit)
    resharing = {p for p, actions in PERMISSION_ACTIONS.items() if Action.SHARE_CASE in actions}
    refused = set(use_cases_without(Action.SHARE_CASE))
    if any(resharing.intersection(held.permissions) for held in _live_grants_held(user)
           if held.use_case not in refused):
        return True
    # ``made_grants_listed``, asked in steps: most people without a sharing role made no share, and
    # a plain read of their shares' organizations says so without building its live-grants filter
    made = Grant.objects.filter(created_by=user)
    made_in = set(made.order_by().values_list("organization_id", flat=True).distinct())
    if not made_in:
        return False
    viewing = set(roles_with(Action.VIEW_CASE))
    if any(_active_roles(user).get(org_id) in viewing for org_id in made_in):
        return True
    return _live_grants_showing_cases(user).filter(case_id__in=made.values("case_id")).exists()


def made_grants_listed(user: Any) -> Q:
    """A filter of the grants ``user`` made that "My shares" lists (``selectors.grants_created_by``)
    and counts them as having made (``has_shares_page``): those whose case they may still see,
    by their role in the grant's organization (an active membership holding VIEW_CASE there) or
    through a live grant of theirs that shows the case (``granted_case_ids``: an outside
    consultant's reshares while the share they reshare under lasts). A row names its case's
    title, its recipient's address, its use and expiry: someone who left the organization, or
    whose role there no longer sees its cases, was still shown them for every share they had
    made there, with titles renamed since (found by review), though managing them was refused.
    None for an inactive or anonymous user."""
    from django.db.models import Exists, OuterRef

    if not _active_user(user):
        return Q(pk__in=[])
    # (``granted_case_ids``' rule, asked of each row's case: part of the list's own query)
    reshared_under = Exists(_live_grants_showing_cases(user).filter(case_id=OuterRef("case_id")))
    return Q(created_by=user) & (Q(organization_id__in=org_ids_where(user, Action.VIEW_CASE)) | Q(reshared_under))


@dataclass(frozen=True)
class _HeldGrant:
    """What the request's gate and navigation read of a live grant addressed to the person
    (``_live_grants_held``)."""

    use_case: str
    organization_id: int
    #: its organization's consultants-and-patients idle limit (minutes; 0 for none)
    external_idle_minutes: int
    permissions: frozenset[str]


def _live_grants_held(user: Any) -> list[_HeldGrant]:
    """The live grants addressed to ``user`` (as grantee or member of the grantee group): their
    use case, organization (and its consultants-and-patients idle limit) and permissions, in one
    query read once per request (``request_memo``: afresh after a write in it, and at each call
    outside a request) for ``live_grant_use_cases``, ``live_grant_idle_minutes``,
    ``kept_to_portal_without_membership`` and ``has_shares_page``, which each read them again
    (up to four queries a page). Empty for an inactive or anonymous user."""
    from apps.sharing.models import Grant

    if not _active_user(user):
        return []

    def read() -> list[_HeldGrant]:
        rows = (Grant.objects.live().addressed_to(user).order_by()
                .values_list("use_case", "organization_id", "organization__external_idle_minutes", "permissions"))
        return [_HeldGrant(use_case=use_case, organization_id=org_id, external_idle_minutes=minutes or 0,
                           permissions=frozenset(permissions or ()))
                for use_case, org_id, minutes, permissions in rows]

    return _per_request(("live_grants_held", user.pk), read)


def live_grant_use_cases(user: Any) -> frozenset[str]:
    """The use cases of the live grants addressed to ``user`` (``_live_grants_held``; none for
    an inactive or anonymous user)."""
    return frozenset(held.use_case for held in _live_grants_held(user))


def live_grant_idle_minutes(user: Any) -> dict[int, int]:
    """The consultants-and-patients idle limit (minutes, 0 for none) of each organization the
    live grants addressed to ``user`` come from, by organization id (``_live_grants_held``;
    none for an inactive or anonymous user): the limits that apply to them
    (``apps.accounts.middleware.idle_limit_seconds``)."""
    return {held.organization_id: held.external_idle_minutes for held in _live_grants_held(user)}


def gives_portal_only(use_cases: Iterable[str]) -> bool:
    """Whether grants of ``use_cases`` (``live_grant_use_cases``) give nothing beyond the patient
    portal: there is one, and none of them gives a case page (``USE_CASE_GIVES``: patient
    education). The access gate keeps an account of no organization holding only such grants to
    the portal, as it keeps a patient."""
    use_cases = set(use_cases)
    return bool(use_cases) and use_cases <= set(use_cases_without(Action.VIEW_CASE))


def kept_to_portal_without_membership(user: Any) -> bool:
    """Whether ``user``, an account that is an active member of no organization (the access gate
    knows its memberships), is given nothing beyond the patient portal, so that the gate keeps it
    there as it keeps a patient member: it holds live grants, or is a patient of some organization
    by its history (``_patient_orgs_by_record``: a patient invitation it accepted, its membership
    there ended or never made; a patient-education share addressed to it), and every live grant
    addressed to it gives it only what a patient-education share gives (``patient_rule_applies``,
    the rule ``_grant_refusal`` refuses by: a patient-education share, or any share of an
    organization it is a patient of). A share of another organization (a second opinion) keeps it
    out, as it gives that share's case page. One query (``_live_grants_held``, none when the
    request read it already), two when it holds another kind of share or none."""
    if not _active_user(user):
        return False
    held = {(grant.use_case, grant.organization_id) for grant in _live_grants_held(user)}
    if held and gives_portal_only(use_case for use_case, _org in held):
        return True
    by_record = _patient_orgs_by_record([user.pk]).get(user.pk, set())
    return bool(by_record) and all(
        patient_rule_applies(use_case=use_case, holder=user, organization_id=org_id, roles={}, by_record=by_record)
        for use_case, org_id in held)


def has_portal_share(use_cases: Iterable[str]) -> bool:
    """Whether grants of ``use_cases`` (``live_grant_use_cases``) include one the patient portal
    lists (a patient-education share): the portal is then for its holder, whatever their role."""
    return UseCase.PATIENT_EDUCATION in set(use_cases)


class WayBack(StrEnum):
    """Where a page that sends nothing of a study or case (a download refused for now: still being
    made, not available) leads back to, ``way_back``'s answer."""

    #: the study's (or case's) own page
    OWN_PAGE = "own_page"
    #: the shared case's page (``sharing:shared_case``): a link holder's, or a recipient's
    SHARED_CASE = "shared_case"
    #: the patient portal
    PORTAL = "portal"
    #: "Shared with me"
    SHARED_WITH_ME = "shared_with_me"


def way_back(actor: Any, obj: object, *, facts: _Facts | None = None) -> WayBack | None:
    """Where a page about ``obj`` (a study or a case) that ``actor`` reached by a download's address
    leads back to, never to a page that refuses them: ``obj``'s own page when the signed-in user
    may see it (VIEW_CASE, as the study or case page decides; a link holder has no such page); else
    the shared case's page when the actor's grants or opened links show its case (the page the
    link led to); else, for a signed-in patient (their role in ``obj``'s organization, or
    wherever they are a member, ``_downloads_as_patient``) or the holder of a patient-education
    share, the patient portal; "Shared with me" for anyone else signed in; None for an anonymous
    link holder whose links show no case page."""
    user = _user_of(actor)
    signed_in = _active_user(user)
    if signed_in and can(user, Action.VIEW_CASE, obj, facts=facts if actor is user else None):
        return WayBack.OWN_PAGE
    case_id = _case_id_of(obj)
    if case_id is not None and can(actor, Action.VIEW_CASE, getattr(obj, "case", obj), facts=facts):
        return WayBack.SHARED_CASE
    if not signed_in:
        return None
    if _downloads_as_patient(user, _org_id_of(obj)) or has_portal_share(live_grant_use_cases(user)):
        return WayBack.PORTAL
    return WayBack.SHARED_WITH_ME


def second_factor_reset_allowed(by: Any, user: Any) -> bool:
    """Whether ``by`` may reset ``user``'s second factor (remove their authenticator and recovery
    codes): themselves; or whoever may manage the members (an org admin) of every organization
    where ``user`` holds an active membership. A person who works with two hospitals is under
    neither one's admin alone: a reset by one, then its single sign-on, would sign in as them in
    the other too. Theirs is reset by the operator (``manage.py mfa_reset``)."""
    from apps.organizations.models import Membership, Organization

    if not _active_user(by):
        return False
    if by.pk == user.pk:
        return True
    org_ids = set(Membership.objects.filter(user=user, is_active=True).values_list("organization_id", flat=True))
    if not org_ids:
        return False
    facts = _Facts(by, timezone.now())
    return all(_decide(facts, Action.MANAGE_MEMBERS, org) for org in Organization.objects.filter(pk__in=org_ids))


def second_factor_resetting_organization(user: Any) -> Organization | None:
    """The organization whose admin can reset ``user``'s second factor under
    ``second_factor_reset_allowed``: their one organization; None for a person of several (or of
    none, as a grantee only), whose factor the operator resets. Their security and code pages name
    it, or the operator, rather than send them to an admin who would be refused."""
    orgs = list(Organization.objects.filter(memberships__user=user, memberships__is_active=True).distinct()[:2])
    return orgs[0] if len(orgs) == 1 else None


def sso_sign_in_allowed(user: Any, organization: Organization) -> bool:
    """Whether ``organization``'s single sign-on may sign ``user`` in, once its provider vouched
    for the address and the user is staff there (``apps.accounts.adapters`` asks; it refuses
    otherwise).

    Security contract: an organization's provider vouches for that organization's staff, and its
    admin runs it: they can make it name anyone of theirs. The session it opens reaches every
    organization of the person, so it signs in only someone who reaches no other organization's
    data (``reaches_beyond``: a membership there, or a share from it); or someone with a
    confirmed second factor while the access gate asks for it (LIGHTBOX_MFA_ENFORCED): then
    nothing is reachable before a code the provider cannot give, and that no one organization's
    admin may reset for a person of several (``second_factor_reset_allowed``). A factor enrolled
    in a session this provider opened does not count (``sso_factor_counts``): its admin could have
    signed the person in while they reached this organization alone and enrolled an authenticator
    of theirs, to answer its code once the person reaches another's. Anyone else signs in with a
    password and a second factor (``apps.accounts.adapters.password_login_refused`` and
    ``apps.accounts.mfa.mfa_required`` then let them, and ask for one; a code of a factor enrolled
    through this provider entered there confirms it, ``mfa.sso_enrolled_confirm``)."""
    from django.conf import settings

    from apps.accounts.mfa import has_second_factor_outside_sso_of

    if not _active_user(user):
        return False
    return not reaches_beyond(user, organization) or (
        settings.LIGHTBOX_MFA_ENFORCED and has_second_factor_outside_sso_of(user, organization))


def sso_factor_counts(device: Any, organization_id: int) -> bool:
    """Whether a second factor (``device``: an authenticator or recovery codes, django-otp's) is
    proof, against the single sign-on of organization ``organization_id``, that the person and
    not that provider's admin is there: it was not enrolled in a session that provider opened
    (``apps.accounts.models.SSOEnrolledFactor``, kept by ``mfa.sso_enrolled_mark``), or it was
    confirmed since by a code entered in a session it did not open. A factor enrolled before
    such enrolments were marked counts. ``apps.accounts.sso.session_outlived`` asks it of the
    factor a session that provider opened was verified with."""
    from apps.accounts.mfa import sso_enrolled_by

    return sso_enrolled_by(device) != organization_id


def reaches_beyond(user: Any, organization: Organization) -> bool:
    """Whether ``user`` reaches data of an organization other than ``organization``: an active
    membership there, or a share from it addressed to them (or to their e-mail address, not
    opened yet) that is neither revoked nor expired (live, or yet to begin): a share from another
    organization opens its case to the session as a membership opens its cases, so
    ``organization``'s provider must not sign them in alone."""
    from apps.sharing.models import Grant

    if Membership.objects.filter(user=user, is_active=True).exclude(organization=organization).exists():
        return True
    open_shares = Grant.objects.filter(revoked_at__isnull=True, expires_at__gt=timezone.now()).exclude(
        organization=organization)
    # a share sent to their address and not opened yet is theirs the moment its link is opened
    return (open_shares.addressed_to(user).exists()
            or open_shares.filter(grantee__isnull=True, grantee_email=(user.email or "").lower()).exclude(
                grantee_email="").exists())


def holds(grant: Grant, user: Any) -> bool:
    """Whether ``grant`` is ``user``'s: they are its grantee (an invitation once accepted) or a
    member of its group; the grants ``Grant.objects.addressed_to(user)`` lists ("shared with me")
    and through which they see its case. An invitation not yet accepted is nobody's. Says
    nothing about whether the grant is live."""
    return _holds(grant, _Facts(user, timezone.now()))


def _holds(grant: Grant, facts: _Facts) -> bool:
    if not _active_user(facts.user):
        return False
    if grant.grantee_id is not None:
        return grant.grantee_id == facts.user.pk
    if grant.grantee_email:
        return False  # sent to an address, not accepted yet: opening its link binds it (share_link_use)
    return facts.in_group(grant)


def is_recipient(grant: Grant, user: Any) -> bool:
    """Whether ``grant`` is addressed to ``user``: it is theirs (``holds``) or, for an invitation
    not yet accepted, they are the account with its e-mail address, who may open its link and so
    accept it. (An anonymous link's grant has no recipient.) Says nothing about whether the grant
    is live. Opening a link asks this; anything the grant gives needs ``holds``."""
    if not _active_user(user):
        return False
    if grant.grantee_id is None and grant.grantee_email:
        return grant.grantee_email == (user.email or "").lower()
    return holds(grant, user)


class OriginalRefusal(StrEnum):
    """Why ``user`` may not ask for the original DICOM under a grant."""

    NOT_RECIPIENT = "not_recipient"  # a dead grant, not theirs (yet), or one needing MFA not passed
    NOT_OFFERED = "not_offered"      # its use case never gives the original (a patient-education share)
    HAS_ORIGINAL = "has_original"    # they can download the original of what it covers already
    PENDING = "pending"              # their earlier request on its case (any share of it) waits for a decision


def _downloads_original_of(grant: Grant, facts: _Facts) -> bool:
    """The user of ``facts`` can download, right now, the original of everything ``grant`` covers
    (by their role or through any live grant): its case, or each study it names."""
    if _study_scope(grant) is None:
        return _decide(facts, Action.DOWNLOAD_ORIGINAL, grant.case)
    return all(_decide(facts, Action.DOWNLOAD_ORIGINAL, study) for study in grant.studies.all())  # type: ignore[attr-defined]


def original_request_refusal(actor: Any, grant: Grant, *, now: datetime | None = None) -> OriginalRefusal | None:
    """Why the user of ``actor`` may not ask for the original DICOM under ``grant``, or None when
    they may (``can(actor, REQUEST_ORIGINAL, grant)``).

    Security contract: only the grant's own recipient, once it is theirs (``holds``: the named
    grantee, a member of its group, the account that accepted an invitation; an address that has
    not opened its invitation's link holds nothing yet), while the grant is live and, when it
    is marked ``mfa_required``, after MFA in this session; and only when they cannot download the
    original of what it covers already (asking would give nothing), nor while an earlier request
    of theirs for the original of its case, under it or under another share of theirs of the
    case, waits for a decision (``PENDING``: one request a person and case at a time,
    ``pending_original_requests``; once it is decided, declined or approved and expired, they
    may ask again). Never under a grant whose use case
    does not give the original (``NOT_OFFERED``: a patient-education share). Anonymous links never
    ask: a link holder's links are not theirs to ask under."""
    return original_request_refusals(actor, [grant], now=now)[0]


def original_request_refusals(actor: Any, grants: Iterable[Grant], *,
                              now: datetime | None = None) -> list[OriginalRefusal | None]:
    """``original_request_refusal`` for each of ``grants``, in order, reading what the rule needs
    once for all of them."""
    grants = list(grants)
    facts = _Facts(_user_of(actor), now or timezone.now())
    facts.prepare(Action.REQUEST_ORIGINAL, grants)
    return [_original_request_refusal(grant, facts) for grant in grants]


def _original_request_refusal(grant: Grant, facts: _Facts) -> OriginalRefusal | None:
    """The one rule of REQUEST_ORIGINAL (``original_request_refusal``), for the user of ``facts``."""
    user = facts.user
    if not (_active_user(user) and grant.is_live(facts.now) and _holds(grant, facts)):
        return OriginalRefusal.NOT_RECIPIENT
    if not second_factor_met(grant, user):
        return OriginalRefusal.NOT_RECIPIENT
    if grant.use_case in use_cases_without(Action.DOWNLOAD_ORIGINAL):
        # an approval grants the original under the same use case, which would not give it
        return OriginalRefusal.NOT_OFFERED
    if _downloads_original_of(grant, facts):
        return OriginalRefusal.HAS_ORIGINAL
    if facts.has_pending_request(grant):
        return OriginalRefusal.PENDING
    return None


def pending_original_requests(user: Any, case_ids: Iterable[int], *,
                              now: datetime | None = None) -> dict[int, Any]:
    """The request of ``user``'s own for the original DICOM that waits for a decision on each of
    ``case_ids``, by case id (cases with none are left out), under whichever of their shares of
    the case it was made: what ``original_request_refusal`` refuses a second request for
    (``PENDING``), on any share of the case (a tumor board's share of a case they asked about
    under a consultant's share offered the request again, and the deciders saw two identical
    ones), and what the pages show as pending. Only a request that may still be decided counts
    (``original_requests_decidable``: its share live and still theirs); one under a share that
    expired waits for nothing until that share is extended, and a new request under another
    share of the case replaces it (``services._original_requests_supersede``). The oldest,
    should there be more than one (made before these rules). In a few queries, whatever the
    number of cases."""
    from apps.sharing.models import OriginalRequest, OriginalRequestStatus

    if not _active_user(user):
        return {}
    reqs = list(OriginalRequest.objects.filter(case_id__in=set(case_ids), requested_by_id=user.pk,
                                               status=OriginalRequestStatus.PENDING)
                .select_related("grant", "grant__case", "requested_by").order_by("created_at", "id"))
    found: dict[int, Any] = {}
    for req, open_ in zip(reqs, original_requests_decidable(reqs, now=now), strict=True):
        if open_:
            found.setdefault(req.case_id, req)
    return found


def original_request_decidable(req: Any, *, now: datetime | None = None) -> bool:
    """Whether a request for the original DICOM (an OriginalRequest) may still be decided:
    ``original_requests_decidable`` for one."""
    return original_requests_decidable([req], now=now)[0]


def original_requests_decidable(reqs: Iterable[Any], *, now: datetime | None = None) -> list[bool]:
    """For each of ``reqs`` (OriginalRequests, with their grant, its case and the requester at
    hand), in order: whether it may still be decided. Who decides is DECIDE_ORIGINAL_REQUEST's;
    this is about the request itself, read in one query whatever their number.

    Security contract: approving gives the requester a new grant of the original, the follow-up
    of the share they asked under; never a way back in once that share is no longer theirs. So
    a request may be decided only while it waits for a decision and the grant it was asked under
    is live (not revoked, which closing its case and the end of their membership do; started;
    not expired; its case open) and still held by the requester (``holds``: its grantee, or a
    member of its group, with an active account). A grant that is extended before a decision
    brings its request back, unless its requester asked again meanwhile under another share of
    the case (the newer replaced it: ``services._original_requests_supersede``); a revoked one
    never does (``services.grants_revoke`` withdraws its requests)."""
    from apps.sharing.models import Grant, OriginalRequestStatus

    reqs = list(reqs)
    now = now or timezone.now()
    facts: dict[int, _Facts] = {}
    for req in reqs:
        facts.setdefault(req.requested_by_id, _Facts(req.requested_by, now))
    # whether each requester is in the group of a group grant, for all of them in one query
    groups = [r for r in reqs if r.grant.grantee_id is None and not r.grant.grantee_email]
    if groups:
        members = set(Grant.group_members.through.objects
                      .filter(grant_id__in={r.grant_id for r in groups},
                              user_id__in={r.requested_by_id for r in groups})
                      .values_list("grant_id", "user_id"))
        for req in groups:
            facts[req.requested_by_id]._in_group[req.grant_id] = (req.grant_id, req.requested_by_id) in members
    return [req.status == OriginalRequestStatus.PENDING and req.grant.is_live(now)
            and _holds(req.grant, facts[req.requested_by_id]) for req in reqs]


def upload_cases(user: Any, obj: object, *, roles: dict[int, str] | None = None) -> QuerySet:
    """The cases of ``obj``'s organization (an Organization, or a row of one) that ``user`` may
    upload studies into: the open cases they see, when their role there may upload. The upload
    page offers these and the tus server accepts no other (``can(user, UPLOAD_STUDY, case)``):
    a closed case takes no new studies. ``roles``: the user's active memberships
    (``_Facts.roles``), when read already."""
    from apps.cases.models import Case

    org_id = _org_id_of(obj)
    role = roles.get(org_id) if roles is not None else role_in(user, org_id)
    if role is None or Action.UPLOAD_STUDY not in ROLE_ACTIONS[role]:
        return Case.objects.none()
    return Case.objects.visible_to(user).filter(organization_id=org_id).open()


def shareable_cases(user: Any, obj: object, *, facts: _Facts | None = None) -> QuerySet:
    """The cases of ``obj``'s organization (an Organization, or a row of one) that ``user`` may
    share: exactly those on which ``can(user, SHARE_CASE, case)`` is true (open or closed; the
    invitation form offers the open ones), in a few queries however many cases the organization
    has. A role there that holds SHARE_CASE holds it on every case of the organization
    (``_role_allows``): the answer is then a query of them all, none decided one by one.
    Otherwise only cases the user owns (when ``OWNER_NEEDS`` gives SHARE_CASE to owners whose
    role holds what it needs) or holds a live grant on can be shared; those few are decided by
    ``_decide``, as ``can_each`` decides, so the grant rule (resharing, study scope, a second
    factor) is not written twice. ``facts``: the request's (``request_facts``), as for ``can``."""
    from apps.cases.models import Case

    org_id = _org_id_of(obj)
    if not _active_user(user):
        return Case.objects.none()
    facts = _facts_of(user, facts)
    if _in_another_of_theirs(facts, obj):  # SHARE_CASE: another of their organizations' (the switch first)
        return Case.objects.none()
    role = facts.roles.get(org_id)
    if role is not None and Action.SHARE_CASE in ROLE_ACTIONS[role]:
        return Case.objects.for_org(org_id)
    maybe = Q(id__in=granted_case_ids(user))
    needs = OWNER_NEEDS.get(Action.SHARE_CASE)
    if role is not None and needs is not None and needs in ROLE_ACTIONS[role]:
        maybe |= Q(created_by=user) | Q(responsible_clinician=user)  # the case owners of ``_owner_ids``
    candidates = list(Case.objects.for_org(org_id).filter(maybe))
    facts.prepare(Action.SHARE_CASE, candidates)
    allowed = [case.pk for case in candidates if _decide(facts, Action.SHARE_CASE, case)]
    return Case.objects.for_org(org_id).filter(pk__in=allowed)


def may_invite(actor: Any, organization: Organization, role: str, *, facts: _Facts | None = None) -> bool:
    """Whether ``actor`` may invite someone to ``organization`` with ``role``, to some invitation:
    what the invitation form offers. Any role but a patient's (a patient is invited from their
    case) with MANAGE_MEMBERS there; an external consultant's also to open cases the actor may
    share (``shareable_cases``), when there is one. The invitation service checks each invitation
    itself on the same actions (MANAGE_MEMBERS, or SHARE_CASE on each case it names).
    ``facts``: the request's (``request_facts``), as for ``can``."""
    if role == Role.PATIENT or role not in Role.values:
        return False
    if can(actor, Action.MANAGE_MEMBERS, organization, facts=facts):
        return True
    return role == Role.EXTERNAL_CONSULTANT and shareable_cases(actor, organization, facts=facts).open().exists()


def invitable_roles(actor: Any, organization: Organization, *, facts: _Facts | None = None) -> list[str]:
    """The roles ``actor`` may invite someone to ``organization`` with (``may_invite``, asked for
    each role, on what is read once for all of them)."""
    facts = _facts_of(actor, facts)
    return [role for role in Role.values if may_invite(actor, organization, role, facts=facts)]


def allowed_renditions(actor: Any, obj: object, *, facts: _Facts | None = None) -> frozenset[str]:
    """The renditions (usecases.Rendition values) ``actor`` may download of ``obj`` (a study or a
    case) right now. Staff get each rendition their role's download actions allow; recipients
    get what a live grant's permissions and rendition scope allow, within its download limit.
    ``facts``: the request's (``request_facts``), as for ``can``."""
    from apps.sharing.usecases import RENDITION_PERMISSION

    allowed = set()
    facts = _facts_of(actor, facts)  # what the decisions read, read once for all renditions
    for rendition, permission in RENDITION_PERMISSION.items():
        (action,) = PERMISSION_ACTIONS[permission]  # a download permission is one action
        if _decide(facts, Action(action), obj, rendition=rendition):
            allowed.add(rendition)
    return frozenset(allowed)


def allowed_renditions_each(actor: Any, objs: Iterable[Any], *, facts: _Facts | None = None) -> list[frozenset[str]]:
    """``allowed_renditions(actor, obj)`` for each of ``objs`` (studies, cases), in order: the same
    answers, made by the same code, with what they read read once for all of them. A share naming
    some studies of a case gives no download of the whole case (``_grant_refusal``), so a page
    that says what its holder may download asks about each study as well as the case."""
    objs = list(objs)
    facts = _facts_of(actor, facts)
    facts.load_grants({_case_id_of(obj) for obj in objs})
    return [allowed_renditions(actor, obj, facts=facts) for obj in objs]


#: what ``grant_gives`` answers for a download of the education copy alone: the permission it
#: needs is "download_preview", but a page that says "Download preview" of a patient-education
#: share (or of any share whose holder may download nothing else under that permission, such as
#: a patient's) names a copy its holder is refused; the pages name it on its own
GIVES_EDUCATION = "download_education"

#: how the pages name what a grant gives its holder, in this order (``grant_gives``)
_GIVES_ORDER = ("view", "download_preview", GIVES_EDUCATION, "download_original", "reshare")


def grant_gives(actor: Any, grants: Iterable[Grant], *, facts: _Facts | None = None) -> list[tuple[str, ...]]:
    """For each of ``grants`` (held by ``actor``), in order: what it gives ``actor`` right now, as
    grant permission values ("view", "download_preview", "download_original", "reshare"; and
    ``GIVES_EDUCATION`` in the place of "download_preview" when that permission gives the
    education copy's download and nothing else, as a patient-education share does), for
    pages that say what a share gives its holder ("Your access"). Decided by the grant rule itself
    (``_grant_refusal``, as ``can`` decides) on what the grant covers: its case, or each study it
    names (a download of one of them counts; the whole case's zip is not given by such a share).
    So its use case's cap, its rendition scope, its download limit, a second factor not passed
    and a patient's education-only downloads are all in the answer, never the permissions alone."""
    from django.db.models import prefetch_related_objects

    grants = list(grants)
    facts = _facts_of(actor, facts)
    prefetch_related_objects(grants, "studies", "case")
    return [_gives(grant, user=facts.user, now=facts.now, facts=facts) for grant in grants]


def grants_give_holders(grants: Iterable[Grant], *, now: datetime | None = None,
                        reads: _HolderReads | None = None) -> list[tuple[str, ...]]:
    """For each of ``grants``, in order: what it gives its holder, as ``grant_gives`` answers it
    (permission values), whoever asks: for the staff pages that list who has access (the case
    page, the close and attach confirmations; the share review, of the grant confirming would
    create), which must not claim what a grant's permissions name and the policy does not give.
    The same rule (``_grant_refusal``), for the holder of each:

    - a grant to a named person: that person (a patient downloads the education copy only); an
      inactive account holds nothing;
    - any other (a group's members, an invitation's address not accepted yet, an anonymous
      link's holder) and an unsaved grant (the review's, with its case set; it names no studies
      yet, and a share naming some gives on each what a whole-case one gives on the case): what
      its use case, rendition scope, studies and download limit leave of its permissions.

    A second factor the grant asks for is taken as passed: its holder passes it to use the grant,
    and whether they did in their own session is no other page's to say. A grant yet to start
    answers what it gives once it starts; a revoked or expired one, or one of a closed case,
    nothing. Four queries at most whatever their number (the named people's memberships and,
    for those who are no member of a grant's organization, what made them patients there,
    ``_patient_orgs_by_record``; the patients that the holders of patients' shares are linked to,
    ``patients_linked_to``; the grants' studies), none for a grant's case or grantee read with it.
    Decides nothing: every use of a grant is still ``can``'s."""
    from django.db.models import prefetch_related_objects

    grants = list(grants)
    now = now or timezone.now()
    saved = [grant for grant in grants if grant.pk is not None]
    prefetch_related_objects(saved, "studies", "case__patient", "grantee")
    grantees = {grant.grantee_id for grant in saved if grant.grantee_id is not None}
    reads = reads or _HolderReads()
    roles = reads.roles(grantees)
    by_record: dict[int, set[int]] = {}
    # what made patients of those who are no member of a grant's organization, if any is
    if any(g.grantee_id is not None and _patient_by_record_asked(g.grantee, g, roles[g.grantee_id]) for g in saved):
        by_record = reads.by_record(grantees)
    # the patients the holders of patients' shares are linked to (``is_case_patients_account``), at once
    # (an unsaved grant's holder, the review's, is read when its answer needs it)
    linked_asked = {g.grantee_id for g in saved if g.grantee_id is not None and patient_rule_applies(
        use_case=g.use_case, holder=g.grantee, organization_id=g.organization_id, roles=roles[g.grantee_id],
        by_record=by_record.get(g.grantee_id, set()))}
    linked = reads.linked(linked_asked)
    answers = []
    for grant in grants:
        at = max(now, grant.starts_at) if grant.starts_at is not None else now
        holder = grant.grantee if grant.grantee_id is not None else None
        if holder is not None and not _active_user(holder):
            answers.append(())
            continue
        facts = _Facts(holder, at, roles=roles.get(grant.grantee_id, {}),
                       by_record=by_record.get(grant.grantee_id, set()),
                       linked=linked.get(grant.grantee_id, set()) if grant.grantee_id in linked_asked else None)
        answers.append(_gives(grant, user=holder, now=at, facts=facts, second_factor_passed=True))
    return answers


def _gives(grant: Grant, *, user: Any, now: datetime, facts: _Facts,
           second_factor_passed: bool = False) -> tuple[str, ...]:
    """What ``grant`` gives ``user`` at ``now`` (``grant_gives``), by the grant rule on what it
    covers: its case, or each study it names (its studies and case read already)."""
    from apps.sharing.usecases import RENDITION_PERMISSION, Rendition

    scope = _study_scope(grant)
    objs = [grant.case] if scope is None else list(grant.studies.all())  # type: ignore[attr-defined]

    def covers(action: Action, rendition: str | None = None) -> bool:
        return any(_grant_refusal(grant, action, obj, user=user, rendition=rendition, now=now, facts=facts,
                                  second_factor_passed=second_factor_passed, describing=True) is None
                   for obj in objs)

    given = set()
    if covers(Action.VIEW_IMAGES):
        given.add("view")
    for rendition, permission in RENDITION_PERMISSION.items():
        named = GIVES_EDUCATION if rendition == Rendition.EDUCATION else permission
        if named not in given and covers(_download_action(rendition), rendition=rendition):
            given.add(named)
    if "download_preview" in given:
        given.discard(GIVES_EDUCATION)  # with the preview's download: "Download preview" says it
    if covers(Action.SHARE_CASE):
        given.add("reshare")
    return tuple(p for p in _GIVES_ORDER if p in given)


def names_downloads(*, use_case: str, permissions: Iterable[str], renditions: Iterable[str]) -> bool:
    """Whether a share of ``use_case`` naming ``permissions`` and ``renditions`` (none: every one)
    gives any download at all, whatever its state, holder and download limit: a rendition in its
    scope whose download permission it names (``RENDITION_PERMISSION``) and its use case does not
    cap away (``USE_CASE_GIVES``), as ``_grant_refusal`` decides. A share that gives none (view
    only) counts no download, so the pages show no download count or limit for it (the
    shared-case page, My shares, the share review): a limit it keeps limits nothing."""
    from apps.sharing.usecases import RENDITION_PERMISSION

    permissions, renditions = set(permissions), set(renditions)
    return any((not renditions or rendition in renditions) and permission in permissions
               and not _use_case_never_gives(use_case, _download_action(rendition), rendition)
               for rendition, permission in RENDITION_PERMISSION.items())


def grant_names_downloads(grant: Grant) -> bool:
    """``names_downloads`` of ``grant`` (saved or not)."""
    return names_downloads(use_case=grant.use_case, permissions=grant.permissions or (),
                           renditions=grant.renditions or ())


def _download_action(rendition: str) -> Action:
    """The action downloading ``rendition`` (a usecases.Rendition value) needs."""
    from apps.sharing.usecases import RENDITION_PERMISSION

    return Action.DOWNLOAD_ORIGINAL if RENDITION_PERMISSION[rendition] == "download_original" \
        else Action.DOWNLOAD_PREVIEW


def download_refusal(actor: Any, obj: object, *, rendition: str) -> GrantRefusal | None:
    """Why ``actor`` may not download ``rendition`` of ``obj`` (a study or a case) right now, or
    None when they may: None exactly when ``can`` says yes to the download (the same decision,
    made by the same code; nothing is counted). For pages that explain a refusal (the patient
    portal) rather than only withhold the button. When several grants of the actor's refuse,
    the reason is the first of ``_REFUSAL_ORDER`` among theirs; with none, NO_ACCESS."""
    return _download_refusal(_Facts(actor, timezone.now()), _download_action(rendition), obj, rendition=rendition)


def download_refusals(actor: Any, objs: Iterable[Any], *, rendition: str,
                      facts: _Facts | None = None) -> list[GrantRefusal | None]:
    """``download_refusal(actor, obj, rendition=rendition)`` for each of ``objs``, in order: the
    same answers, made by the same code, with what they read from the database read once for
    all of them (the patient portal lists every study of every share; its queries do not grow
    with them). ``facts``: the request's (``request_facts``), as for ``can``."""
    objs = list(objs)
    action = _download_action(rendition)
    facts = _facts_of(actor, facts)
    facts.prepare(action, objs)
    return [_download_refusal(facts, action, obj, rendition=rendition) for obj in objs]


def _download_refusal(facts: _Facts, action: Action, obj: object, *, rendition: str) -> GrantRefusal | None:
    if _decide(facts, action, obj, rendition=rendition):
        return None
    case_id = _case_id_of(obj)
    grants = facts.grants_of(case_id) if case_id is not None else []
    return first_refusal(refusal for g in grants if (refusal := _grant_refusal(
        g, action, obj, user=facts.user, rendition=rendition, now=facts.now, facts=facts)) is not None)


def first_refusal(refusals: Iterable[GrantRefusal]) -> GrantRefusal:
    """The reason a page gives when several refuse: the first of ``_REFUSAL_ORDER`` among
    ``refusals``; with none, NO_ACCESS."""
    return min(refusals, key=_REFUSAL_ORDER.index, default=GrantRefusal.NO_ACCESS)


#: a transfer begun while its grant was live may be resumed this long after it began, even when
#: the grant expired meanwhile; never after a revocation, nor once the case is closed
RESUME_AFTER_EXPIRY = timedelta(hours=1)


def _transfer_to_resume(grant: Grant, package_key: str, *, package_etag: str | None, since: datetime, by: Any,
                        while_live: bool = False, client: str | None = None) -> int | None:
    """The counted transfer of ``package_key`` under ``grant`` that ``by`` may resume (its id, the
    latest), or None: one of the package as it is now (counted on the ETag ``package_etag``,
    whatever the request's If-Range says: a package that changed since, a study added to the case
    or its previews made meanwhile, is a new download; None only before the package is built,
    ``download_decide``), begun after ``since`` (and, with ``while_live``, while the grant was
    live: between its start and its expiry) whose last byte has not gone out yet, by that actor:
    the signed-in user, or the holder of a link onto the grant in the browser session that began
    it. Holding the same link in another session is not enough (a link passed on begins a counted
    download of its own), nor is a transfer that was finished (the package downloaded again).
    ``client``: the browser session (``session_ref``) the transfer must have been begun in, for a
    Range request without If-Range (``download_decide``'s ``bare_range``); None: any of the actor's."""
    from apps.sharing.models import GrantDownload

    user, link_id, session = _download_by(by, grant)
    who = Q()
    if user is not None:
        who |= Q(by_user=user)
    if link_id is not None and session:
        who |= Q(by_link_id=link_id, by_session=session)
    if not who:
        return None
    began = GrantDownload.objects.filter(who, grant=grant, package_key=package_key[:200], started_at__gt=since,
                                         completed_at__isnull=True)
    if package_etag is not None:
        began = began.filter(package_etag=package_etag[:64])
    if while_live:
        began = began.filter(started_at__gte=grant.starts_at, started_at__lt=grant.expires_at)
    if client is not None:
        began = began.filter(by_session=client)
    return began.order_by("-started_at").values_list("pk", flat=True).first()


def _client_may_hold_another(case_id: int, package_key: str, *, package_etag: str | None, client: str) -> bool:
    """Whether the browser session ``client`` (``session_ref``; "" for none) may hold a first part
    of a version of ``package_key`` other than ``package_etag`` (None: not known yet, before the
    package is built): no session, or a transfer of another version begun in it, however long
    ago, finished or not (a file that was complete then is one ``wget -c`` asks the rest of)."""
    from apps.sharing.models import GrantDownload

    if not client:
        return True
    if package_etag is None:
        return False
    return (GrantDownload.objects.filter(grant__case_id=case_id, package_key=package_key[:200], by_session=client)
            .exclude(package_etag=package_etag[:64]).exists())


def _download_by(actor: Any, grant: Grant) -> tuple[Any, int | None, str]:
    """Who begins a download under ``grant``: the active signed-in user, and the link onto the
    grant a link holder opened with the session they opened it in (either may be None; the
    session "" when there is no link)."""
    from apps.sharing.models import ShareLink

    user = _user_of(actor)
    link_id, session = None, ""
    if isinstance(actor, LinkHolder):
        link_id = ShareLink.objects.filter(pk__in=actor.link_ids, grant=grant).values_list("pk", flat=True).first()
        session = actor.session_ref if link_id is not None else ""
    return (user if _active_user(user) else None), link_id, session


class DownloadDecision:
    """``download_decide``'s yes to one download: by the actor's role (``by_role``, nothing to
    count) or on the actor's grants, in the order ``download_count`` tries to count on them (each
    with the id of the actor's transfer it continues, which is not counted again, or None). The
    request that decided counts on it and drops it, never keeps it for a later decision. Counting
    is a conditional UPDATE, so the download limit is the database's when the download is counted,
    not the decision's; a grant after the first is looked at only when counting on those before it
    failed, which wrote nothing. Once counted, ``transfer_id`` is the transfer (GrantDownload) it
    was counted on or continues (None by role). ``package_etag``: the version of the package it
    was decided on (None: decided before the package was built, never counted)."""

    def __init__(self, *, actor: Any, obj: object, action: Action, package_key: str, package_etag: str | None,
                 grants: Iterator[tuple[Grant, int | None]] | None) -> None:
        self.actor, self.obj, self.action, self.package_key = actor, obj, action, package_key
        self.package_etag = package_etag
        self.by_role = grants is None
        self._grants = grants if grants is not None else iter(())
        self._seen: list[tuple[Grant, int | None]] = []
        self.transfer_id: int | None = None

    def grants(self) -> Iterator[tuple[Grant, int | None]]:
        """The grants it may be counted on, in order; each found when first asked for (a later one
        only when counting on the earlier ones failed)."""
        yield from self._seen
        for found in self._grants:
            self._seen.append(found)
            yield found

    @property
    def grant(self) -> Grant | None:
        """The grant it is decided on (the first of ``grants``); None by role."""
        return next((grant for grant, _resume in self.grants()), None)

    @cached_property
    def withholds_identifying_pixels(self) -> bool:
        """Whether the package it allows leaves out the images whose pixels may identify their
        patient: it is decided on an anonymous link's share without a second factor
        (``withholds_identifying_pixels``, the rule the viewer's frames follow too); never by role.
        Read once, when asked (a package holding such an image asks it)."""
        return not self.by_role and (grant := self.grant) is not None and withholds_identifying_pixels(grant)

    @property
    def new_transfer(self) -> bool:
        """Whether it is decided as a new transfer on a grant, continuing none of the actor's: a
        Range request from a byte after the first then names bytes of a package this actor is not
        known to have begun (its first part may be of another version), so the downloads
        interface sends the package whole. False by role (no transfer is kept: the downloads
        interface sends such a Range whole too, nothing telling which version the first part is
        of) and for a decision continuing a transfer of the package as it is now
        (``package_etag``; without If-Range, one begun in the request's browser session,
        ``download_decide``'s ``bare_range``)."""
        return not self.by_role and next((resume is None for _grant, resume in self.grants()), True)


def _download_grants(actor: Any, obj: object, *, action: Action, rendition: str, package_key: str,
                     package_etag: str | None, resumed: bool, facts: _Facts,
                     client: str | None = None) -> Iterator[tuple[Grant, int | None]]:
    """The grants under which ``actor`` may download ``rendition`` of ``obj`` (``download_decide``
    has found their role gives no download), in the order they are tried, each with the transfer
    begun under it that the download continues (``_transfer_to_resume``), or None: first, for a
    ``resumed`` one, the live grants under which the actor began it, then the expired ones they
    began it under while live; then each live grant that covers the download. ``client``: as
    ``_transfer_to_resume``'s; a session that may hold a first part of another version of the
    package (``_client_may_hold_another``) continues nothing."""
    from apps.sharing import services

    user, now = facts.user, facts.now
    case_id = _case_id_of(obj)
    if case_id is None:
        return
    grants = facts.grants_of(case_id)
    if resumed and client is not None and _client_may_hold_another(case_id, package_key, package_etag=package_etag,
                                                                   client=client):
        resumed = False  # a new download: which version its first part is of, nothing says
    if resumed:
        for grant in grants:
            # the actor's own transfer only (another member's is not theirs to continue
            # uncounted), and with the second factor a grant that needs it asks for
            if second_factor_met(grant, user) and (transfer := _transfer_to_resume(
                    grant, package_key, package_etag=package_etag, since=now - services.RESUME_WINDOW, by=actor,
                    client=client)):
                yield grant, transfer
        for grant in _grants_of(actor, case_id, now, expired_since=now - RESUME_AFTER_EXPIRY):
            if second_factor_met(grant, user) and (transfer := _transfer_to_resume(
                    grant, package_key, package_etag=package_etag, since=now - RESUME_AFTER_EXPIRY,
                    while_live=True, by=actor, client=client)):
                yield grant, transfer
    for grant in grants:
        if grant_covers(grant, action, obj, user=user, rendition=rendition, now=now, facts=facts):
            yield grant, None


def download_decide(*, actor: Any, obj: object, rendition: str, package_key: str, package_etag: str | None = "",
                    resumed: bool = False, bare_range: bool = False, request: HttpRequest | None = None,
                    facts: _Facts | None = None) -> DownloadDecision:
    """Whether ``actor`` may download ``rendition`` of ``obj``, decided once, counting nothing:
    the decision (``DownloadDecision``) that ``download_count`` then counts, so that a download
    decided before its package is built is not decided again to be counted. Raises
    PermissionDenied (recorded) when not.

    Staff download on their role. A recipient downloads on a grant: ``resumed=True`` with the
    same ``package_key`` (a Range request continuing a transfer the same actor began, as below)
    counts once, even when that first download used up the limit; another member's transfer is
    not a resume of theirs. Only the same package is continued: ``package_etag`` is the package's
    ETag as it is now, and a transfer counted on another (the package changed since: a study added
    to the case, its previews made) is not resumed, whether the request sent If-Range or not: the
    download is a new one, counted (refused when the limit is used up). None only for a decision
    made before the package is built, which ``download_count`` does not count: a transfer of any
    version is taken then, and the decision made again with the ETag before anything goes out.

    Large transfers outlive short grants: ``resumed=True`` is also accepted on a grant of the
    actor's that has expired (not revoked, case still open) when the actor (the same user, or the
    holder of the same link; for a group grant, the member who began it) began a download of the
    same package under it less than RESUME_AFTER_EXPIRY ago and while it was live. Nothing else is
    accepted after expiry: a fresh download, or a Range request with no such download.

    ``bare_range``: the ``resumed`` request sent no If-Range (``curl -C -``, ``wget -c``), so
    nothing says which version of the package its client holds the first part of: it continues
    only a transfer begun in the request's own browser session (``session_ref``: each transfer
    records the session it was begun in), and none when that session began a transfer of another
    version of the package, ever (``_client_may_hold_another``). Otherwise it is a new download,
    counted, which the downloads interface sends whole: the same person's transfer of the new
    version on another device (their phone), continued from where the laptop's copy of the old
    version stopped, would be the new zip's rest spliced onto the old one's first part. A request
    whose If-Range names the package as it is now says its first part is of this version: any
    transfer of the actor's of it is continued.

    ``facts``: what the caller's checks of this request read already (``decision_facts``); they
    must not have been read before a write of the request that changes them."""
    action = _download_action(rendition)
    facts = _facts_of(actor, facts)
    if _active_user(facts.user) and _role_allows(facts.user, action, obj, facts):
        return DownloadDecision(actor=actor, obj=obj, action=action, package_key=package_key,
                                package_etag=package_etag, grants=None)
    client = (session_ref(request) if request is not None else "") if bare_range else None
    decision = DownloadDecision(actor=actor, obj=obj, action=action, package_key=package_key, package_etag=package_etag,
                                grants=_download_grants(actor, obj, action=action, rendition=rendition,
                                                        package_key=package_key, package_etag=package_etag,
                                                        resumed=resumed, facts=facts, client=client))
    if decision.grant is None:
        raise _record_denial(actor, action, obj, request)
    return decision


def download_count(decision: DownloadDecision, *, request: HttpRequest | None = None, sending: int = 0,
                   package_bytes: int = 0) -> Grant | None:
    """Count the download ``decision`` allows, once it is known to go out: on its first grant that takes it
    (a new download claims one of the grant's downloads, a resumed one touches its transfer's
    row), and return that grant, with ``decision.transfer_id`` the transfer's row; None by role
    (nothing counted). Raises PermissionDenied (recorded) when no grant of the decision takes it:
    the limit used up meanwhile by another download, say. Reads nothing the decision read again.
    ``sending`` bytes of a ``package_bytes``-byte package (the decision's ``package_etag``): what
    this request sends; a new transfer keeps the package's ETag and size, and a resume may not take
    what went out under its transfer past what one transfer may send of the package it counted
    (``services.FINISHED_AFTER_PACKAGES``). A decision made before the package was built
    (``package_etag`` None) is not counted: ValueError."""
    from apps.sharing import services

    if decision.by_role:
        return None
    if decision.package_etag is None:
        raise ValueError("download_count: decide on the package as built (its package_etag)")
    for grant, resume in decision.grants():
        if resume is not None:
            if services.grant_download_resume(transfer_id=resume, sending=sending, package_etag=decision.package_etag):
                decision.transfer_id = resume
                return grant
            continue
        by_user, by_link_id, by_session = _download_by(decision.actor, grant)
        # the browser session it is begun in, a signed-in person's too: a Range request without
        # If-Range continues only a transfer of its own session (``download_decide``)
        by_session = by_session or (session_ref(request) if request is not None else "")
        transfer = services.grant_record_download(grant=grant, package_key=decision.package_key, request=request,
                                                  by_user=by_user, by_link_id=by_link_id, by_session=by_session,
                                                  sending=sending, package_etag=decision.package_etag,
                                                  package_bytes=package_bytes)
        if transfer is not None:
            decision.transfer_id = transfer
            return grant
    raise _record_denial(decision.actor, decision.action, decision.obj, request)


def download_authorize(*, actor: Any, obj: object, rendition: str, package_key: str, package_etag: str = "",
                       resumed: bool = False, count: bool = True, request: HttpRequest | None = None,
                       sending: int = 0, package_bytes: int = 0) -> Grant | None:
    """``download_decide`` then, unless ``count=False`` (HEAD: the same question, without counting
    or touching anything), ``download_count`` (``sending`` of ``package_bytes``: as there): the
    grant the download is (or would be) counted on; None by role. Raises PermissionDenied
    (recorded) when refused."""
    decision = download_decide(actor=actor, obj=obj, rendition=rendition, package_key=package_key,
                               package_etag=package_etag, resumed=resumed, request=request)
    return (download_count(decision, request=request, sending=sending, package_bytes=package_bytes) if count
            else decision.grant)


def download_may_continue(*, actor: Any, obj: object, rendition: str, package_key: str, package_etag: str = "",
                          request: HttpRequest | None = None) -> bool:
    """Whether a transfer of ``package_key`` (the package whose ETag is ``package_etag``) already
    under way (decided by ``download_decide`` when it began) may go on sending bytes: the
    downloads interface asks this while it streams,
    so that a long transfer does not outlive the access it began under. Decided afresh (never
    on the facts of the decision it began under, which its count may have changed).

    Security contract: exactly when a resume of it would be accepted now
    (``download_decide(resumed=True)``, which counts and changes nothing): staff
    while their role allows the download; a recipient or link holder while a grant of theirs
    under which they began it is live, or expired less than RESUME_AFTER_EXPIRY after the
    transfer began (the rule for resuming, unchanged); never after the grant or the link is
    revoked, the case closed, anonymous links switched off or the membership ended. A refusal is
    recorded (access.denied), as any refusal of ``download_decide``."""
    try:
        download_decide(actor=actor, obj=obj, rendition=rendition, package_key=package_key,
                        package_etag=package_etag, resumed=True, request=request)
    except PermissionDenied:
        return False
    return True


class DeniedByPolicy(PermissionDenied):
    """PermissionDenied that carries its audit event, so the denial survives a rollback.

    The denial is recorded at once. When the refused call ran inside a caller's
    ``transaction.atomic``, the event may be rolled back with it; the exception is then also
    tracked (``apps.audit.services.denial_track``) and, when the request or task ends
    (apps.audit.middleware, the Celery signals in apps.audit.apps), recorded again only if it is
    gone: exactly one event either way."""

    def __init__(self, *args: Any, audit: dict[str, Any] | None = None, event: Any = None) -> None:
        super().__init__(*args)
        self.audit = audit or {}   # the record(...) arguments
        self.event = event         # the AuditEvent written (or None)


def _record_denial(actor: Any, action: Action | str, obj: object, request: HttpRequest | None) -> DeniedByPolicy:
    """Record one access.denied event; returns the exception to raise (it carries the event)."""
    from apps.audit.services import record

    label = actor.label if isinstance(actor, LinkHolder) else ""
    audit = {"action": "access.denied", "actor": _user_of(actor), "actor_label": label,
             "organization_id": _org_id_of(obj), "target": obj, "outcome": "denied", "request": request,
             "details": {"wanted": str(action)}}
    exc = DeniedByPolicy(audit=audit, event=record(**audit))
    if transaction.get_connection().in_atomic_block:
        from apps.audit.services import denial_track

        denial_track(exc)  # may be rolled back with the caller's transaction: checked at the end
    return exc


def require(actor: Any, action: Action | str, obj: object, *, request: HttpRequest | None = None,
            rendition: str | None = None, facts: _Facts | None = None) -> None:
    """Raise PermissionDenied (a DeniedByPolicy, with the denial recorded) unless
    ``can(actor, action, obj)`` (``facts``: as for ``can``)."""
    require_decided(can(actor, action, obj, rendition=rendition, facts=facts), actor, action, obj, request=request)


def require_decided(allowed: bool, actor: Any, action: Action | str, obj: object, *,
                    request: HttpRequest | None = None) -> None:
    """``require`` for a decision this module has just made (``allowed``: ``can`` or one
    answer of ``can_actions`` for the same actor, action and object), so that a page deciding
    its buttons at once need not decide again whether it may be seen: raise PermissionDenied
    (a DeniedByPolicy, with the denial recorded) unless ``allowed``."""
    if not allowed:
        raise _record_denial(actor, action, obj, request)
