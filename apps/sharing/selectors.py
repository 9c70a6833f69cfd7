"""Reads for sharing. Lookups by id answer 404 for rows the actor may not see."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db.models import Count, Min, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext

from apps.sharing import policy
from apps.sharing.models import (
    REVOKED_CASE_CLOSED,
    Grant,
    GrantDownload,
    GrantState,
    Notification,
    OriginalRequest,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.accounts.models import User
    from apps.cases.models import Case
    from apps.organizations.models import Organization


def case_get_shared(*, actor: Any, public_id: UUID, request=None) -> Case:
    """A case the actor may at least see (staff role or live grant, or an opened link), else 404
    (recorded): outsiders cannot tell a missing case from a hidden one. With ``request``,
    decided on what the request read (``policy.request_facts``)."""
    from apps.cases.models import Case

    case = Case.objects.select_related("organization", "patient").filter(public_id=public_id).first()
    if case is None:
        raise Http404
    if not policy.can(actor, policy.Action.VIEW_CASE, case, facts=policy.request_facts(request, actor)):
        policy._record_denial(actor, policy.Action.VIEW_CASE, case, request)
        raise Http404
    return case


def cases_of_opened_links(*, link_ids: Iterable[int]) -> list[UUID]:
    """The public ids of the cases an anonymous link holder's opened links (their session's
    ShareLink ids) lead to: the way back from a refusal to the shared case page. Whether those
    links still open is not decided here: the case page decides it, and says so if one ended."""
    from apps.sharing.models import ShareLink

    return list(ShareLink.objects.filter(pk__in=list(link_ids))
                .values_list("grant__case__public_id", flat=True).distinct())


def grant_get_for_manager(*, user: User, public_id: UUID) -> Grant:
    """A grant the user may see as staff of its organization or as its creator; else 404."""
    if not user.is_authenticated:
        raise Http404
    grant = (Grant.objects.select_related("case", "grantee", "organization")
             .filter(Q(pk__in=Grant.objects.visible_to(user).values("pk")) | Q(created_by=user))
             .filter(public_id=public_id).first())
    if grant is None:
        raise Http404
    return grant


def grant_get_for_recipient(*, user: User, public_id: UUID) -> Grant:
    """A grant addressed to the user (or, for staff of its organization, any of its grants)."""
    if not user.is_authenticated:
        raise Http404
    grant = (Grant.objects.select_related("case", "organization")
             .filter(Q(pk__in=Grant.objects.addressed_to(user).values("pk"))
                     | Q(pk__in=Grant.objects.visible_to(user).values("pk")))
             .filter(public_id=public_id).first())
    if grant is None:
        raise Http404
    return grant


def _elsewhere_ids(request: HttpRequest | None) -> list[int]:
    """The ids of the organizations whose rows the page of ``request`` does not list: the
    person's other organizations than the active one (``policy.organizations_elsewhere``)."""
    return [org.pk for org in policy.organizations_elsewhere(request)]


def grants_created_by(*, user: User, request: HttpRequest | None = None) -> QuerySet[Grant]:
    """"My shares": grants the user made, newest first: a query the page shows a page of (a
    sharer makes thousands over the years), each row with what it shows in a fixed number of
    queries. ``with_state`` then gives the page's grants their state. Only those whose case the
    user may still see (``policy.made_grants_listed``): none of an organization they left, or
    whose role there no longer sees its cases. With ``request`` (the page's), none of the
    person's other organizations than the active one (``policy.organizations_elsewhere``:
    reached by switching)."""
    if not user.is_authenticated:
        return Grant.objects.none()
    return (Grant.objects.filter(policy.made_grants_listed(user)).exclude(organization_id__in=_elsewhere_ids(request))
            .select_related("case", "grantee", "organization")
            .prefetch_related("links", "extensions", "renewals").order_by("-created_at", "-id"))


def grants_received(*, user: User, request: HttpRequest | None = None) -> QuerySet[Grant]:
    """"Shared with me": grants addressed to the user, newest first (a query to page through;
    ``with_state`` gives a page's grants their state). With ``request`` (the page's), none of the
    person's other organizations than the active one (``policy.organizations_elsewhere``): those
    are reached by switching; a share from an organization they are not a member of is listed
    (labelled with it), whichever one is active."""
    return (Grant.objects.addressed_to(user).exclude(organization_id__in=_elsewhere_ids(request))
            .select_related("case", "organization", "created_by").order_by("-created_at", "-id"))


@dataclass
class Elsewhere:
    """What a page of the active organization leaves out of one of the person's other
    organizations (``policy.organizations_elsewhere``), for the page to say so and offer the switch."""

    organization: Organization
    shares: int = 0          # shares they made there
    requests: int = 0        # requests for the original there they may decide
    received: int = 0        # shares to them from there
    notifications: int = 0   # their notices about it

    def __bool__(self) -> bool:
        return bool(self.shares or self.requests or self.received or self.notifications)


def elsewhere_made(*, user: User, request: HttpRequest) -> list[Elsewhere]:
    """For "My shares": the shares the user made and the requests they may decide in each of their
    other organizations (those with any). Shares counted as the list lists them once switched
    (``policy.made_grants_listed``): the banner said "N shares there" where their role no longer
    sees the cases, and switching showed none (found by review)."""
    others = policy.organizations_elsewhere(request)
    if not others:
        return []
    shares = dict(Grant.objects.filter(policy.made_grants_listed(user), organization__in=others)
                  .values("organization_id")
                  .annotate(n=Count("id")).values_list("organization_id", "n"))
    requests: dict[int, int] = {}
    # decided as they would be there (no request: no active organization narrows the decision)
    for req in original_requests_pending_for(user=user):
        requests[req.organization_id] = requests.get(req.organization_id, 0) + 1
    found = [Elsewhere(org, shares=shares.get(org.pk, 0), requests=requests.get(org.pk, 0)) for org in others]
    return [e for e in found if e]


def elsewhere_received(*, user: User, request: HttpRequest) -> list[Elsewhere]:
    """For "Shared with me": the shares to the user and their notices from each of their other
    organizations (those with any)."""
    others = policy.organizations_elsewhere(request)
    if not others:
        return []
    received = dict(Grant.objects.filter(pk__in=Grant.objects.addressed_to(user).values("pk"), organization__in=others)
                    .values("organization_id").annotate(n=Count("id")).values_list("organization_id", "n"))
    notices = dict(Notification.objects.filter(user=user, organization__in=others).order_by()
                   .values("organization_id").annotate(n=Count("id")).values_list("organization_id", "n"))
    found = [Elsewhere(org, received=received.get(org.pk, 0), notifications=notices.get(org.pk, 0))
             for org in others]
    return [e for e in found if e]


def with_state(grants: Iterable[Grant], *, holder: User | None = None,
               request: HttpRequest | None = None) -> list[Grant]:
    """``grants`` (a page of them), each with ``current_state`` at one moment and its label
    (``current_state_label``, the GrantState's: what the lists say, a board's ended grants too).
    With ``holder`` (the lists of grants received: "Shared with me", the API's), a grant that has
    not ended but gives them nothing now (``policy.grants_ended_for_holder``) is in the state
    ``NO_LONGER_AVAILABLE``, not Active (with ``request``, decided on what the request read:
    ``policy.request_facts``). The one place a holder's lists take a grant's state from."""
    now = timezone.now()
    listed = list(grants)
    gone = (policy.grants_ended_for_holder(holder, listed, facts=policy.request_facts(request, holder))
            if holder is not None else [False] * len(listed))
    for g, ended_for_holder in zip(listed, gone, strict=True):
        g.current_state = GrantState.NO_LONGER_AVAILABLE if ended_for_holder else g.state(now)
        g.current_state_label = GrantState(g.current_state).label
    return listed


def with_case_titles(grants: Iterable[Grant], *, user: User, request: HttpRequest | None = None) -> list[Grant]:
    """``grants`` ("Shared with me"'s page of them), each with ``case_title_shown``: its case's
    title as it is now while ``user`` may know the case (``policy.grants_naming_case``); else the
    title it had when the share ended (``Grant.case_title_at_end``; the case's own while not
    renamed since), or a neutral label where that is not known. The template shows this, never
    ``case.title`` of an ended share. A share that has not ended but gives ``user`` nothing now
    (``policy.grants_ended_for_holder``: a tumor board's, its participant made a patient account)
    is named by the title a rename since kept on it, as on an ended share
    (``services.grants_case_title_keep``), else by the neutral label, never by the case's title
    as it is now (found by review)."""
    listed = list(grants)
    facts = policy.request_facts(request, user)
    names = policy.grants_naming_case(user, listed, facts=facts)
    gone = policy.grants_ended_for_holder(user, listed, facts=facts)
    for grant, named, ended_for_holder in zip(listed, names, gone, strict=True):
        if named or (grant.case_title_at_end is None and not ended_for_holder):
            grant.case_title_shown = grant.case.title
        else:
            grant.case_title_shown = grant.case_title_at_end or gettext("A case no longer shared with you")
    return listed


def access_ended_with_board(*, user: Any, case_id: int) -> bool:
    """Whether ``user``'s access to a case ended with a tumor board's meeting: of their grants on
    it that have ended, the last to end is in the state ``ENDED_WITH_BOARD`` (``Grant.state``, what
    the lists say). What an open viewer tells a reader it has refused (their own grants only,
    nothing of anyone else's); not an access decision: the policy has refused already. A reader
    who still holds a live or scheduled grant on the case was refused for something else (a
    second factor a share asks for, say): never told the meeting ended."""
    if not getattr(user, "is_authenticated", False):
        return False
    now = timezone.now()
    grants = Grant.objects.filter(pk__in=Grant.objects.addressed_to(user).values("pk"), case_id=case_id)
    states = [(g, g.state(now)) for g in grants.select_related("case")]
    if any(state in (GrantState.ACTIVE, GrantState.SCHEDULED) for _g, state in states):
        return False
    if not states:
        return False
    _last, state = max(states, key=lambda pair: min(pair[0].revoked_at or pair[0].expires_at, pair[0].expires_at))
    return state == GrantState.ENDED_WITH_BOARD


def with_gives(grants: Iterable[Grant], *, now: datetime | None = None) -> list[Grant]:
    """``grants`` (a page's list of who has access: the case page's, the close and attach
    confirmations'), each with ``gives``: what it gives its holder, as the policy decides it
    (``policy.grants_give_holders``: its use case, rendition scope, studies and download limit),
    not the permissions it names; and ``held_back``: why a patient's share gives its patient none
    of its studies (``policy.grants_held_back_entirely``: every one is held back, their images'
    patient ID not the case's MRN or missing), () when it gives them some. The pages say it with
    ``sharing/_grant_access.html``. A fixed number of queries."""
    listed = list(grants)
    for grant, (gives, held_back) in zip(listed, policy.grants_give_and_held_back(listed, now=now), strict=True):
        grant.gives = gives
        grant.held_back = held_back
    return listed


def original_request_get(*, user: User, public_id: UUID) -> OriginalRequest:
    req = (OriginalRequest.objects.visible_to(user).select_related("grant", "grant__case", "case", "requested_by")
           .filter(public_id=public_id).first())
    if req is None:
        raise Http404
    return req


def original_requests_pending_for(*, user: User, request: HttpRequest | None = None) -> list[OriginalRequest]:
    """The pending requests for an original the user may decide, newest first. All the pending
    ones the user sees are asked of the policy at once (``can_each``, a fixed number of queries):
    cutting them first (it took the newest 100) hid those the user may decide behind
    others' in an organization with many waiting. The page shows a page of them. With
    ``request`` (the page's), the policy decides on what the request read (``policy.request_facts``).
    A request whose share is no longer its requester's (expired, or its case closed; a revoked
    one's requests are withdrawn) is not listed: it cannot be decided
    (``policy.original_requests_decidable``). With ``request``, only the active organization's are
    decided there (``policy.ACTIVE_ORGANIZATION_ACTIONS``), so only those are listed."""
    reqs = list(OriginalRequest.objects.visible_to(user).filter(status="pending")
                .select_related("grant", "grant__case", "case", "requested_by").order_by("-created_at", "-id"))
    decides = policy.can_each(user, policy.Action.DECIDE_ORIGINAL_REQUEST, reqs,
                              facts=policy.request_facts(request, user))
    reqs = [r for r, may in zip(reqs, decides, strict=True) if may]
    return [r for r, open_ in zip(reqs, policy.original_requests_decidable(reqs), strict=True) if open_]


def original_requests_latest(*, user: User, grants: Iterable[Grant]) -> dict[int, OriginalRequest]:
    """The user's own newest request for the original DICOM under each of ``grants``, by grant id
    (grants they never asked under are left out), in one query: what the pages show of it
    (waiting for a decision, declined, withdrawn as its share ended). Whether they may ask (again) is the policy's
    (REQUEST_ORIGINAL), not this."""
    ids = [g.pk for g in grants]
    if not ids or not getattr(user, "is_authenticated", False):
        return {}
    latest: dict[int, OriginalRequest] = {}
    for req in (OriginalRequest.objects.filter(grant_id__in=ids, requested_by=user)
                .order_by("grant_id", "-created_at", "-id")):
        latest.setdefault(req.grant_id, req)
    return latest


def notifications_for(*, user: User, limit: int = 20, request: HttpRequest | None = None) -> list[Notification]:
    """The user's newest notices. With ``request`` (the page's), none about the person's other
    organizations than the active one (``policy.organizations_elsewhere``: reached by switching).
    Each names the board or case it is about by its title (``message_shown``) only where the user
    still sees it (``policy.notices_naming``, in one or two queries for the page), or, about a
    case whose share to them ended when it was closed, as "Shared with me" names that share
    (``_notices_of_closed_cases_named``)."""
    notices = list(Notification.objects.filter(user=user).exclude(organization_id__in=_elsewhere_ids(request))
                   .select_related("case", "board")[:limit])
    for notice, names in zip(notices, policy.notices_naming(user, notices, facts=policy.request_facts(request, user)),
                             strict=True):
        notice.names_what_about = names
    _notices_of_closed_cases_named(user=user, notices=notices)
    return notices


def _notices_of_closed_cases_named(*, user: User, notices: list[Notification]) -> None:
    """Each of ``notices`` about a case the reader no longer sees (``names_what_about`` False)
    whose share to them ended when the case was closed (``REVOKED_CASE_CLOSED``) names the case as
    "Shared with me" names that share on the same page (``with_case_titles``): by the title it had
    when the share ended (``Grant.case_title_at_end``, the case's own while not renamed since),
    never by a later one. Closing a case ended its shares, so their notices ("A case was shared
    with you") said nothing of which case (found by QA). A share that ended otherwise (revoked,
    run out) leaves its notices unnamed, as before; one whose title was not kept (marked by
    migration sharing 0014) too. One query, only when there is such a notice."""
    unnamed = {n.case_id for n in notices
               if not n.names_what_about and (n.board_id is None or n.board is None)
               and n.case_id is not None and n.case is not None}
    if not unnamed:
        return
    ended = (Grant.objects.filter(pk__in=Grant.objects.addressed_to(user).values("pk"), case_id__in=unnamed,
                                  revoke_reason=REVOKED_CASE_CLOSED)
             .select_related("case").order_by("case_id", "-revoked_at", "-id"))
    titles: dict[int, str] = {}
    for grant in ended:  # the latest to end, of each case
        titles.setdefault(grant.case_id,
                          grant.case.title if grant.case_title_at_end is None else grant.case_title_at_end)
    for notice in notices:
        if notice.case_id in unnamed and titles.get(notice.case_id):
            notice.names_what_about, notice.case_title_shown = True, titles[notice.case_id]


# --------------------------------------------------------------------------- usage reports

def grants_expired_unused(*, organization_id: int) -> list[Grant]:
    """Grants that ran out (or whose case closed) without ever being opened or downloaded."""
    now = timezone.now()
    return list(Grant.objects.for_org(organization_id)
                .filter(Q(expires_at__lte=now) | Q(case__status="closed"), revoked_at__isnull=True,
                        open_count=0, download_count=0))


def grants_downloaded_again_within(*, organization_id: int, hours: int = 24) -> list[dict[str, Any]]:
    """Packages downloaded anew (not resumed) more than once under one grant within ``hours``:
    one row per (grant, package) with how many downloads and how far apart the first two were."""
    window = timedelta(hours=hours)
    rows = []
    per_package = (GrantDownload.objects.filter(grant__organization_id=organization_id)
                   .values("grant_id", "package_key").annotate(n=Count("id"), first=Min("started_at"))
                   .filter(n__gt=1))
    for row in per_package:
        times = list(GrantDownload.objects.filter(grant_id=row["grant_id"], package_key=row["package_key"])
                     .order_by("started_at").values_list("started_at", flat=True))
        gaps = [b - a for a, b in pairwise(times)]
        if any(gap <= window for gap in gaps):
            rows.append({"grant_id": row["grant_id"], "package_key": row["package_key"], "downloads": row["n"],
                         "shortest_gap_seconds": int(min(gaps).total_seconds())})
    return rows



def case_wide_grants(*, case: Case) -> list[Grant]:
    """The shares on ``case`` that cover all of its studies (they name none), live now or yet to
    start: a study put into the case reaches their recipients from then on (the page that attaches
    a study to a case lists them before the button). Revoked or expired grants, and grants that
    name studies, reach no study added later. A tumor board's own grants (``board.grants``) are
    left out: that page lists them by their board (``apps.cases.selectors.case_boards_reaching``)."""
    return list(case.grants.filter(revoked_at__isnull=True, expires_at__gt=timezone.now(), studies__isnull=True)
                .filter(board_sessions__isnull=True)
                .select_related("grantee", "created_by").order_by("expires_at", "id"))


def live_shares_to(*, case: Case, user: User | None = None, email: str = "") -> list[Grant]:
    """The shares of ``case`` that already reach ``user`` (named, or a member of its group) or the
    address ``email``, live now or yet to start (not revoked, not expired), soonest ending first:
    what the share review names before a second share to the same person is made (found by QA:
    seven live shares of one case to one person, made without a word)."""
    reaches = Q(grantee_email__iexact=email) if email else Q()
    if user is not None:
        reaches |= Q(grantee=user) | Q(group_members=user) | Q(grantee_email__iexact=user.email)
    if not reaches:
        return []
    return list(Grant.objects.for_org(case.organization_id)
                .filter(reaches, case=case, revoked_at__isnull=True, expires_at__gt=timezone.now())
                .distinct().order_by("expires_at", "id"))


@dataclass(frozen=True)
class HeldBack:
    """A study of a share being reviewed that its patient will not be given, and why."""

    study: Any
    other_patient: bool  # the patient ID in its images is another's; else they carry none


def studies_held_back_from_patient(*, user: User, case: Case, use_case: str, grantee: Any,
                                   studies: Iterable[Any] = ()) -> list[HeldBack]:
    """The studies a share of ``case`` (``use_case``, to ``grantee``: a user, or None for an address
    or a link) would cover, among those ``user`` who shares it sees (``studies`` when it names
    some, else the case's latest versions), that its patient is never given
    (``policy.held_back_from_patient``), for the share review to list them as held back: a
    patient's share only (``policy.patient_rule_applies``); none for any other share."""
    from apps.cases.selectors import OTHER_PATIENT
    from apps.imaging.models import Study

    if not policy.patient_rule_applies(use_case=use_case, holder=grantee, organization_id=case.organization_id):
        return []
    studies = list(studies) or list(Study.objects.visible_to(user).filter(case=case).latest_versions()
                                    .order_by("study_date", "pk"))
    return [HeldBack(study=study, other_patient=why == OTHER_PATIENT)
            for study, why in zip(studies, policy.held_back_from_patient(case=case, studies=studies), strict=True)
            if why is not None]
