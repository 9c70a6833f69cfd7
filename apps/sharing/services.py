"""Grant writes. Every feature that gives or takes access (shares, tumor boards, invitations,
case closing) goes through these, so the rules and the audit trail live in one place.

Access decisions are not made here (apps.sharing.policy); these functions check that what is
being written is sound (templates, maxima, org switches) and record it in the audit trail.
Audit details and notifications carry ids and figures only, never patient data."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from apps.audit import actions as audit_actions
from apps.audit.services import record
from apps.core import i18n
from apps.core.forms import is_past, require_datetimes_in_range
from apps.core.i18n import Deferred
from apps.core.site import site_url
from apps.sharing import policy
from apps.sharing.models import (
    COUNT_MAX,
    Grant,
    GrantDownload,
    GrantExtension,
    GrantSource,
    Notification,
    OriginalRequest,
    OriginalRequestStatus,
    Permission,
    SecondFactor,
    ShareConfirmation,
    ShareLink,
    SharingPolicy,
)
from apps.sharing.usecases import (
    ANONYMOUS_LINK_FIELDS,
    ANONYMOUS_MAX_HOURS,
    TEMPLATES,
    RecipientKind,
    Rendition,
    Template,
    UseCase,
    renditions_given,
    template_for,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

    from apps.accounts.models import User
    from apps.cases.models import Case
    from apps.organizations.models import Organization


def _require_count(value: int | None, message: str, *, code: str | None = None) -> None:
    """A download or use limit is None (no limit) or a whole number from 1 to COUNT_MAX, the most
    its column holds: checked here as well as in the forms and the API, so that every caller
    (seed_demo, a shell, the next feature) gets a ValidationError, not a database error."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= COUNT_MAX):
        raise ValidationError(message % {"max": COUNT_MAX}, code=code)


@transaction.atomic
def grant_create(*, case: Case, grantee: User | None, permissions: Iterable[str], expires_at: datetime,
                 by: User | None, source: str = GrantSource.SHARE, starts_at: datetime | None = None,
                 request: HttpRequest | None = None, group_members: Iterable[User] = (), group_name: str = "",
                 grantee_email: str = "", use_case: str = UseCase.CUSTOM, renditions: Iterable[str] = (),
                 mfa_required: bool = False, download_limit: int | None = None, studies: Iterable[Any] = (),
                 renewed_from: Grant | None = None, board: Any = None) -> Grant:
    """Give ``grantee`` (or ``group_members``, or whoever accepts at ``grantee_email``, or nobody
    for an anonymous link) ``permissions`` on ``case`` (or on named ``studies`` of it) until
    ``expires_at``. ``board``: the tumor board whose meeting gives it (its id is in the audit event).

    The caller has already decided, through apps.sharing.policy, that ``by`` may share; this
    function checks the grant itself is sound: an open case, known permissions, a future expiry,
    times and a download limit the database holds.
    """
    require_datetimes_in_range(starts_at, expires_at)
    _require_count(download_limit, _("A download limit must be a whole number from 1 to %(max)s."),
                   code="download_limit")
    permissions = sorted(set(permissions))
    unknown = set(permissions) - set(Permission.values)
    if unknown or not permissions:
        raise ValidationError(_("Unknown or missing permissions."))
    if not _case_open_locked(case):
        raise ValidationError(_("This case is closed; nothing can be shared from it."))
    starts_at = starts_at or timezone.now()
    if expires_at <= starts_at:
        raise ValidationError(_("The expiry must be later than the start."))
    renditions = sorted(set(renditions))
    if set(renditions) - set(Rendition.values):
        raise ValidationError(_("Unknown rendition."))
    studies = list(studies)
    if studies:  # locked, and checked as the database has them: still there, in this case
        _studies_lock(studies=studies, case=case)
    grant = Grant.objects.create(organization_id=case.organization_id, case=case, grantee=grantee,
                                 permissions=permissions, source=source, created_by=by,
                                 starts_at=starts_at, expires_at=expires_at, group_name=group_name,
                                 grantee_email=(grantee_email or "").strip().lower(), use_case=use_case,
                                 renditions=renditions, mfa_required=mfa_required,
                                 download_limit=download_limit, renewed_from=renewed_from)
    members = list(group_members)
    if members:
        grant.group_members.set(members)
    if studies:
        grant.studies.set(studies)  # type: ignore[attr-defined]
    record(action="grant.created", actor=by, organization_id=case.organization_id, target=grant, case=case,
           request=request, details={"permissions": permissions, "source": source,
                                     "expires_at": expires_at.isoformat(), "use_case": use_case,
                                     "renditions": renditions, "download_limit": download_limit,
                                     "group_size": len(members), "invited": bool(grantee_email),
                                     "studies": [str(s.public_id) for s in studies],
                                     "grantee": str(grantee.public_id) if grantee else None,
                                     **({"board": str(board.public_id)} if board is not None else {})})
    return grant


def _case_open_locked(case: Case) -> bool:
    """Lock the case's row (the lock ``apps.cases.services.case_close`` takes with its UPDATE) and
    say whether it is open as the database has it, not as ``case`` was read.

    A share and a close at once run one after the other: a close that committed first is seen here
    (the share is refused), or the close waits for the new grant to commit and then revokes it.
    Checked on the object read before, a share made while the case closed kept its grant
    unrevoked (closing never saw it) and reopening the case brought it back. The case is the first
    row a share locks (then the studies, then a grant being renewed), as the close takes the case
    before its grants: never the other way round. In the caller's transaction."""
    from apps.cases.models import Case, CaseStatus

    status = (Case.objects.select_for_update(no_key=True).filter(pk=case.pk)
              .values_list("status", flat=True).first())
    return status == CaseStatus.OPEN


def _studies_lock(*, studies: list[Any], case: Case) -> None:
    """Lock the rows of the studies a grant is about to name, in the caller's transaction, and
    check they are still there and still in ``case``.

    ``apps.imaging.services.study_delete`` takes the same row lock before it deletes a study, so
    the two serialize: a deletion that came first has committed and the study is gone here (a
    ValidationError, shown on the share form), or the deletion waits for this grant to commit and
    then revokes or narrows it. Without the lock, the deletion could not see the uncommitted grant
    and its foreign key to the study would fail at commit (a 500). Locked in id order, so two
    shares naming the same studies do not deadlock."""
    from apps.imaging.models import Study

    wanted = {s.pk for s in studies}
    found = dict(Study.objects.select_for_update().filter(pk__in=wanted).order_by("pk")
                 .values_list("pk", "case_id"))
    if set(found) != wanted:
        raise ValidationError(_("A study to be shared was deleted meanwhile. Check the studies and share again."),
                              code="study_deleted")
    if any(case_id != case.pk for case_id in found.values()):
        raise ValidationError(_("Only studies of this case can be shared from it."))


@transaction.atomic
def grants_revoke(*, grants: Iterable[Grant], by: User | None, reason: str,
                  request: HttpRequest | None = None, board: Any = None) -> int:
    """Revoke every still-unrevoked grant given. Takes effect on the next request (policy reads
    grants live). Returns how many were revoked; an already revoked grant stays as it was.
    Requests for the original still waiting under a revoked grant are withdrawn with it
    (``_original_requests_withdraw``), and the grants of the original approved under it are
    revoked with it (counted in the number returned), except on a renewal: every way a grant is
    revoked (by its sharer, by closing its case, by a renewal, a board's end, a study's deletion,
    the end of its recipient's membership) comes through here. ``board``: the tumor board whose
    meeting's end revokes them (its id is in each grant.revoked event, as in its grant.created:
    the audit names the board of each).

    Only the grants' rows are locked (not their cases'): ``original_request_decide`` locks the
    case, then the grant, then the request, as closing a case does, and a revocation takes the
    grant, then its requests."""
    now = timezone.now()
    ids = [g.pk for g in grants]
    to_revoke = list(Grant.objects.select_for_update(of=("self",)).filter(pk__in=ids, revoked_at__isnull=True)
                     .select_related("case"))
    for grant in to_revoke:
        grant.revoked_at = now
        grant.revoked_by = by
        grant.revoke_reason = reason
        grant.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        grant.links.filter(revoked_at__isnull=True).update(revoked_at=now)
        record(action="grant.revoked", actor=by, organization_id=grant.organization_id, target=grant,
               case=grant.case, request=request,
               details={"reason": reason,
                        **({"source": "board", "board": str(board.public_id)} if board is not None else {})})
        _original_requests_withdraw(grant=grant, by=by, reason=reason, request=request)
    revoked = len(to_revoke)
    if to_revoke and reason != "renewed":
        # the original approved under a share ends with it, and with the share it was renewed
        # into (a renewal carries the share on: what was approved under the old one runs its own
        # course until the share, however often renewed, ends), and so does any renewal of such
        # an approval, made before grant_renew_refusal refused them (nobody's approved_grant)
        approved = set(OriginalRequest.objects.filter(grant__in=_renewed_from_all(to_revoke))
                       .exclude(approved_grant=None).values_list("approved_grant", flat=True))
        following = list(Grant.objects.filter(pk__in=_renewed_into_all(approved), revoked_at__isnull=True))
        if following:
            revoked += grants_revoke(grants=following, by=by, reason=reason, request=request, board=board)
        # what its holders invited others to under it ends with it, unless they may still share it
        # another way (not on a renewal: the share goes on in the new grant)
        from apps.accounts.services import invitations_withdraw_unsupported

        holders = {g.grantee_id for g in to_revoke} | set(Grant.group_members.through.objects.filter(
            grant_id__in=[g.pk for g in to_revoke]).values_list("user_id", flat=True))
        invitations_withdraw_unsupported(senders=holders - {None},
                                         case_ids={g.case_id for g in to_revoke}, by=by, reason=reason,
                                         request=request)
    return revoked


def _renewed_from_all(grants: list[Grant]) -> set[int]:
    """The ids of ``grants`` and of every grant each was renewed from, back to the first."""
    ids = {g.pk for g in grants}
    step = {g.renewed_from_id for g in grants} - {None}
    while step - ids:
        ids |= step
        step = set(Grant.objects.filter(pk__in=step).exclude(renewed_from=None).values_list("renewed_from_id",
                                                                                          flat=True))
    return ids


def _renewed_into_all(ids: set[int]) -> set[int]:
    """``ids`` and the ids of every grant renewed from one of them, and from those, to the newest."""
    ids, step = set(ids), set(ids)
    while step:
        step = set(Grant.objects.filter(renewed_from__in=step).values_list("pk", flat=True)) - ids
        ids |= step
    return ids


def _original_requests_withdraw(*, grant: Grant, by: User | None, reason: str, request: HttpRequest | None,
                                requested_by: User | None = None) -> int:
    """The requests for the original DICOM still waiting under ``grant`` (only ``requested_by``'s,
    when given) once it is no longer their requester's: revoked, or the requester taken out of
    its group. Approving one would give a new grant of the original to someone who no longer
    holds the share they asked under (``policy.original_requests_decidable`` refuses it too).
    Each is closed as withdrawn, with no decider (``decided_by`` empty), and recorded as
    ``original_request.withdrawn`` with why the share ended, so deciders no longer see it
    waiting. In the caller's transaction, after the grant's row is locked. Returns how many."""
    pending = OriginalRequest.objects.select_for_update().filter(grant=grant, status=OriginalRequestStatus.PENDING)
    if requested_by is not None:
        pending = pending.filter(requested_by=requested_by)
    return _original_requests_close(list(pending.order_by("pk")), by=by, case=grant.case, request=request,
                                    details=lambda req: {"reason": reason, "grant": str(grant.public_id)})


def _original_requests_close(requests: list[OriginalRequest], *, by: User | None, case: Case,
                             request: HttpRequest | None, details: Callable[[OriginalRequest], dict]) -> int:
    """Close ``requests`` as withdrawn, with no decider (``decided_by`` empty), each recorded as
    ``original_request.withdrawn`` with ``details(req)``: for ``_original_requests_withdraw`` and
    ``_original_requests_supersede``. Returns how many."""
    now = timezone.now()
    for req in requests:
        req.status = OriginalRequestStatus.WITHDRAWN
        req.decided_by = None
        req.decided_at = now
        req.save(update_fields=["status", "decided_by", "decided_at"])
        record(action=audit_actions.ORIGINAL_REQUEST_WITHDRAWN, actor=by, organization_id=req.organization_id,
               target=req, case=case, request=request, details=details(req))
    return len(requests)


#: the mark migration sharing 0015 leaves in the ``decision_note`` of each request it closed, until
#: the closure is recorded (its ``CLOSED_MARK``), followed by the public id of the request it kept
ORIGINAL_REQUEST_CLOSED_MARK = "sharing-0015:superseded-by:"


def original_requests_closed_by_migration_record() -> int:
    """Record in each organization's trail the requests for the original DICOM that migration
    sharing 0015 closed (two or more of one requester for one case waiting, made before 5d75554)
    without recording them, a migration not writing through the live audit service: each as
    ``_original_requests_supersede`` records one, ``original_request.withdrawn`` with reason
    ``superseded``, its share and the request kept (``superseded_by``), by the system, dated when
    recorded (``"by": "migration"``). Found by the mark the migration left
    (``ORIGINAL_REQUEST_CLOSED_MARK``: withdrawn, no decider), which is cleared by a conditional
    UPDATE in the event's transaction: each is recorded once, however often this runs, two
    processes at once included. Run after ``migrate`` by the app's post_migrate receiver
    (``apps.sharing.apps``). Returns how many were recorded."""
    marked = (OriginalRequest.objects.filter(status=OriginalRequestStatus.WITHDRAWN, decided_by__isnull=True,
                                             decision_note__startswith=ORIGINAL_REQUEST_CLOSED_MARK)
              .select_related("case", "grant").order_by("pk"))
    recorded = 0
    for req in marked:
        with transaction.atomic():
            if not OriginalRequest.objects.filter(pk=req.pk, decision_note=req.decision_note).update(decision_note=""):
                continue  # recorded meanwhile
            record(action=audit_actions.ORIGINAL_REQUEST_WITHDRAWN, actor=None, organization_id=req.organization_id,
                   target=req, case=req.case,
                   details={"reason": "superseded", "grant": str(req.grant.public_id),
                            "superseded_by": req.decision_note[len(ORIGINAL_REQUEST_CLOSED_MARK):],
                            "by": "migration"})
            recorded += 1
    return recorded


def grants_end_for_member(*, organization: Organization, user: User, by: User | None,
                          request: HttpRequest | None = None) -> int:
    """A member leaves ``organization`` (deactivated): every share of that organization addressed
    to them (or sent to their e-mail address and not yet accepted) that is not revoked is revoked,
    and they are taken out of each of its group shares not revoked, which stay for the other
    members; their requests for the original still waiting under those are withdrawn. Not only
    live ones: a share that starts later, or whose case is closed for now, would give access once
    it starts or the case reopens; nor only unexpired ones, however long ago they expired: an
    expired share gives access again once extended (and a group share is renewed with its
    members), and one that expired less than ``policy.RESUME_AFTER_EXPIRY`` ago still lets a
    transfer begun under it be resumed. Each change is recorded (reason ``membership_ended``).
    Returns how many shares they lost."""
    unrevoked = Grant.objects.filter(organization=organization, revoked_at__isnull=True)
    addressed = Q(grantee=user)
    if user.email:  # sent to their address and not yet accepted: opening its link would bind it to them
        addressed |= Q(grantee__isnull=True, grantee_email=user.email.lower())
    own = list(unrevoked.filter(addressed))
    revoked = grants_revoke(grants=own, by=by, reason="membership_ended", request=request)
    groups = list(unrevoked.filter(group_members=user).exclude(pk__in=[g.pk for g in own]).select_related("case"))
    for grant in groups:
        grant.group_members.remove(user)
        record(action=audit_actions.GRANT_MEMBER_REMOVED, actor=by, organization_id=grant.organization_id,
               target=grant, case=grant.case, request=request,
               details={"reason": "membership_ended", "member": str(user.public_id)})
        # the share is no longer theirs: what they asked under it is not decided
        _original_requests_withdraw(grant=grant, by=by, reason="membership_ended", request=request,
                                    requested_by=user)
    # invitations waiting there: to them (theirs to accept no more), and those they sent and
    # could no longer send (what they gave access from has ended)
    from apps.accounts.services import invitations_to_member_withdraw, invitations_withdraw_unsupported

    invitations_to_member_withdraw(organization=organization, user=user, by=by, request=request)
    invitations_withdraw_unsupported(senders=[user], organization_id=organization.pk, by=by,
                                     reason="membership_ended", request=request)
    return revoked + len(groups)


def grants_case_title_keep(*, case: Case, title: str) -> None:
    """``case`` is being renamed from ``title``: each of its shares that has ended (revoked, run
    out, or every one of a closed case) keeps ``title``, the one its holder had while the share
    lasted, unless it keeps an earlier one (renamed again since); "Shared with me" names such a
    share's case by it (``policy.grants_naming_case``), so that the new title, which may name the
    patient, is not learnt by someone whose access ended (found by review). A share that has not
    ended (live, or yet to start) keeps none: it is named as the case is. In the renaming's
    transaction (``apps.cases.services.case_update``). Records nothing itself: the edit is audited.

    A share that has not ended but gives its holder nothing any more (``policy.grants_ended_for_holder``:
    a tumor board's, its participant no longer in a role that takes part in boards) ended for
    them: it keeps ``title`` as an ended one does, and so still names the case by it once the
    meeting ends and revokes it (it kept none, and was then named by the new title)."""
    now = timezone.now()
    grants = Grant.objects.filter(case=case)
    ended = Q() if case.status != "open" else Q(revoked_at__isnull=False) | Q(expires_at__lte=now)
    if case.status == "open":
        ended |= Q(pk__in=_grants_ended_for_holders(grants.exclude(ended).filter(grantee__isnull=False)))
    grants.filter(ended, case_title_at_end__isnull=True).update(case_title_at_end=title)
    if case.status == "open":
        grants.exclude(ended).exclude(case_title_at_end__isnull=True).update(case_title_at_end=None)


def _grants_ended_for_holders(grants: QuerySet[Grant]) -> list[int]:
    """The ids of ``grants`` (not ended, each to one person) that give their holder nothing any
    more (``policy.grants_ended_for_holder``, asked for each holder on their grants)."""
    by_holder: dict[int, list[Grant]] = {}
    for grant in grants.select_related("case", "grantee"):
        by_holder.setdefault(grant.grantee_id, []).append(grant)
    ended = []
    for held in by_holder.values():
        gone = policy.grants_ended_for_holder(held[0].grantee, held)
        ended += [grant.pk for grant, is_gone in zip(held, gone, strict=True) if is_gone]
    return ended


# --------------------------------------------------------------------------- tokens

def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def share_confirmation_claim(*, user: User, token: str) -> tuple[bool, str]:
    """Claim a share review's one-time confirmation ``token`` for ``user``: (True, "") for the one
    confirmation that may make the share; else (False, the public id of the share it made, or ""
    while it is still being made).

    The claim is one INSERT of the token's hash, a unique column, committed at once (its own
    transaction): of two confirmations at the same moment the database lets exactly one insert
    (PostgreSQL holds the second until the first commits, then refuses it; SQLite has one writer at
    a time), whatever each read before. A session cannot do that: both requests read the token
    unused before either saved it used."""
    token_hash = _hash_token(token)
    try:
        with transaction.atomic():
            ShareConfirmation.objects.create(token_hash=token_hash, user=user)
    except IntegrityError:
        made = ShareConfirmation.objects.filter(token_hash=token_hash, user=user) \
            .values_list("grant_public_id", flat=True).first()
        return False, str(made) if made else ""
    return True, ""


def share_confirmation_made(*, user: User, token: str, grant: Grant) -> None:
    """The share the claimed confirmation ``token`` made: what a confirmation sent again is shown."""
    ShareConfirmation.objects.filter(token_hash=_hash_token(token), user=user).update(grant_public_id=grant.public_id)


def share_confirmation_release(*, user: User, token: str) -> None:
    """Nothing was made under the claimed ``token`` (refused, or an error): it may be sent again."""
    ShareConfirmation.objects.filter(token_hash=_hash_token(token), user=user, grant_public_id__isnull=True).delete()


def share_confirmations_prune(now: datetime | None = None) -> int:
    """Delete the claims of confirmation tokens no session can send any more: a review's token is
    taken only from the session that issued it and less than SESSION_COOKIE_AGE after it was issued
    (``views._share_confirm_issued``), so a claim older than that is never asked about again. A claim whose
    share was never recorded (the request died between the claim and the share) goes with them,
    instead of saying "being created" for ever. Returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.SESSION_COOKIE_AGE)
    deleted, _rows = ShareConfirmation.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def share_link_get(raw_token: str) -> ShareLink | None:
    """The link a raw token names, or None. Looked up by hash only."""
    if not raw_token or len(raw_token) > 200:
        return None
    return (ShareLink.objects.select_related("grant", "grant__case", "grant__case__patient", "organization")
            .filter(token_hash=_hash_token(raw_token)).first())


@transaction.atomic
def share_link_create(*, grant: Grant, by: User | None, anonymous: bool = False, second_factor: str = "",
                      passcode: str = "", passcode_hash: str = "", max_uses: int | None = None,
                      not_before: datetime | None = None,
                      request: HttpRequest | None = None) -> tuple[ShareLink, str]:
    """A new link onto ``grant``. Returns the link and its raw token, which is shown once and never
    stored (256 random bits; the row holds its sha256). A passcode is given in clear (a new
    share) or as the hash of an earlier link's (a renewal keeps the passcode the recipient knows)."""
    second_factor = second_factor or SecondFactor.NONE
    if second_factor not in SecondFactor.values:
        raise ValidationError(_("Unknown second factor."), code="second_factor")
    if second_factor == SecondFactor.PASSCODE and not passcode_hash and len(passcode or "") < 6:
        raise ValidationError(_("A passcode needs at least 6 characters."), code="passcode")
    if second_factor == SecondFactor.BIRTH_DATE and not grant.case.patient.birth_date:
        raise ValidationError(_("The patient's birth date is not on record; choose a passcode instead."),
                              code="second_factor")
    _require_count(max_uses, _("A use limit must be a whole number from 1 to %(max)s."), code="max_uses")
    require_datetimes_in_range(not_before)
    if anonymous and not grant.is_anonymous:
        raise ValidationError(_("An anonymous link needs a grant without a named recipient."))
    raw = secrets.token_urlsafe(32)
    link = ShareLink.objects.create(
        organization_id=grant.organization_id, grant=grant, token_hash=_hash_token(raw), anonymous=anonymous,
        second_factor=second_factor,
        passcode_hash=(passcode_hash or make_password(passcode)) if second_factor == SecondFactor.PASSCODE else "",
        max_uses=max_uses, not_before=not_before, created_by=by)
    record(action="share_link.created", actor=by, organization_id=grant.organization_id, target=link,
           case=grant.case, request=request,
           details={"grant": str(grant.public_id), "anonymous": anonymous, "second_factor": second_factor,
                    "max_uses": max_uses, "not_before": not_before.isoformat() if not_before else None})
    return link, raw


class LinkRefusal:
    """Why a link was not opened (codes the landing page explains)."""

    UNKNOWN = "unknown"
    DEAD = "dead"                    # revoked, expired, or case closed
    NOT_YET = "not_yet"
    USED_UP = "used_up"
    LOCKED = "locked"
    SIGN_IN = "sign_in"              # identity-linked: sign in first
    WRONG_RECIPIENT = "wrong_recipient"
    MFA_REQUIRED = "mfa_required"
    ANONYMOUS_OFF = "anonymous_off"


def share_link_refusal(*, link: ShareLink, user: Any, now: datetime | None = None) -> str | None:
    """Why ``link`` may not be opened now by ``user`` (None: it may). Read-only."""
    now = now or timezone.now()
    grant = link.grant
    if link.revoked_at is not None or (not grant.is_live(now) and grant.starts_at <= now):
        return LinkRefusal.DEAD
    if link.opens_at > now:  # its "not before" or its grant's start (the not-yet page shows it)
        return LinkRefusal.NOT_YET
    if link.locked_at is not None:
        return LinkRefusal.LOCKED
    if link.anonymous:
        if not policy.anonymous_links_allowed(link.organization):
            return LinkRefusal.ANONYMOUS_OFF
    else:
        if user is None or not user.is_authenticated:
            return LinkRefusal.SIGN_IN
        if not policy.is_recipient(grant, user):
            return LinkRefusal.WRONG_RECIPIENT
        if not policy.second_factor_met(grant, user):
            return LinkRefusal.MFA_REQUIRED
    if link.max_uses is not None and link.use_count >= link.max_uses:
        return LinkRefusal.USED_UP
    return None


def share_link_refused(*, link: ShareLink | None, reason: str, user: Any = None,
                       request: HttpRequest | None = None) -> None:
    """Record a refused opening (every attempt is in the audit trail)."""
    record(action="share_link.refused", actor=user, organization_id=link.organization_id if link else None,
           target=link, case=link.grant.case if link else None, outcome="denied", request=request,
           actor_label="" if user is not None and user.is_authenticated else "link", details={"reason": reason})


@transaction.atomic
def share_link_use(*, link: ShareLink, user: Any, request: HttpRequest | None = None) -> bool:
    """Count one opening of ``link`` (use limit, grant usage) and bind an invitation grant to the
    user who accepted it. False when the use limit was reached meanwhile (conditional UPDATE).

    The grant's row is locked first, then the link's: the order grants_revoke takes them (it
    revokes the grant, then its links), so an opening and a revocation at once wait for each
    other instead of deadlocking."""
    list(Grant.objects.select_for_update().filter(pk=link.grant_id).values_list("pk", flat=True))
    query = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True, locked_at__isnull=True)
    if link.max_uses is not None:
        query = query.filter(use_count__lt=link.max_uses)
    if not query.update(use_count=F("use_count") + 1):
        return False
    link.refresh_from_db(fields=["use_count"])
    grant = link.grant
    if not link.anonymous and grant.grantee_id is None and grant.grantee_email and user is not None:
        Grant.objects.filter(pk=grant.pk, grantee__isnull=True).update(grantee=user)
        grant.grantee = user
        record(action="grant.accepted", actor=user, organization_id=grant.organization_id, target=grant,
               case=grant.case, request=request)
    grant_record_open(grant=grant, actor=user if not link.anonymous else None, request=request,
                      actor_label=f"link:{link.public_id}" if link.anonymous else "")
    return True


@transaction.atomic
def share_link_check_second_factor(*, link: ShareLink, value: str, request: HttpRequest | None = None) -> bool:
    """Check the passcode or birth date. Five wrong answers lock the link for good (a new link
    must be issued); each wrong answer is recorded."""
    link = ShareLink.objects.select_for_update().select_related("grant__case__patient").get(pk=link.pk)
    if link.locked_at is not None:
        return False
    value = (value or "").strip()
    if link.second_factor == SecondFactor.PASSCODE:
        ok = bool(value) and check_password(value, link.passcode_hash)
    elif link.second_factor == SecondFactor.BIRTH_DATE:
        try:
            ok = date.fromisoformat(value) == link.grant.case.patient.birth_date
        except ValueError:
            ok = False
    else:
        ok = True
    if ok:
        if link.failed_attempts:
            ShareLink.objects.filter(pk=link.pk).update(failed_attempts=0)
        return True
    link.failed_attempts += 1
    fields = ["failed_attempts"]
    if link.failed_attempts >= ShareLink.MAX_FAILED_ATTEMPTS:
        link.locked_at = timezone.now()
        fields.append("locked_at")
    link.save(update_fields=fields)
    record(action="share_link.second_factor_failed", organization_id=link.organization_id, target=link,
           case=link.grant.case, outcome="denied", request=request, actor_label="link",
           details={"attempts": link.failed_attempts, "locked": link.locked_at is not None})
    return False


@transaction.atomic
def share_link_revoke(*, link: ShareLink, by: User | None, request: HttpRequest | None = None) -> bool:
    done = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if done:
        record(action="share_link.revoked", actor=by, organization_id=link.organization_id, target=link,
               case=link.grant.case, request=request)
    return bool(done)


# --------------------------------------------------------------------------- usage

@transaction.atomic
def grant_record_open(*, grant: Grant, actor: Any = None, request: HttpRequest | None = None,
                      actor_label: str = "") -> None:
    """Keep the grant's usage: first and last opened, number of openings; audited, in the same
    transaction (no opening counted without its event)."""
    now = timezone.now()
    Grant.objects.filter(pk=grant.pk, first_opened_at__isnull=True).update(first_opened_at=now)
    Grant.objects.filter(pk=grant.pk).update(last_opened_at=now, open_count=F("open_count") + 1)
    grant.refresh_from_db(fields=["first_opened_at", "last_opened_at", "open_count"])
    record(action="grant.opened", actor=actor, actor_label=actor_label, organization_id=grant.organization_id,
           target=grant, case=grant.case, request=request, details={"opens": grant.open_count})


#: the grants whose opening this browser session has recorded: showing them again is no new opening
OPENED_SESSION_KEY = "lightbox_opened_grants"
#: the links whose second factor (passcode, birth date) was passed in this browser session
LINK_SECOND_FACTOR_SESSION_KEY = "lightbox_link_second_factor_ok"
#: when the anonymous links this browser session opened were last used (apps.accounts.middleware)
LINK_LAST_SEEN_SESSION_KEY = "lightbox_links_last_seen"


def link_session_end(request: HttpRequest, *, keep_for: Any = None) -> list[int]:
    """Drop from the browser session what opening share links put there: the anonymous links
    (``policy.LINK_SESSION_KEY``), the links' second factors passed, the grants whose opening was
    recorded, when the links were last used, and the viewer sessions opened in it by anyone but
    ``keep_for`` (a user; None: all of them), which viewer.js's frames and beacons would otherwise
    still touch. Returns the ids of the anonymous links dropped.

    At sign-in (``link_session_end_at_sign_in``): Django keeps an anonymous visitor's session data
    when someone signs in on the same browser, so the person signing in inherited the visitor's
    links (a shared workstation: a visitor's link of another hospital's case, found by review).
    When the links' idle limit passed (``link_session_idle_end``). Sign-out flushes the session."""
    from apps.viewer.views import SESSIONS_KEY

    session = request.session
    link_ids = list(session.get(policy.LINK_SESSION_KEY, []))
    for key in (policy.LINK_SESSION_KEY, LINK_SECOND_FACTOR_SESSION_KEY, OPENED_SESSION_KEY,
                LINK_LAST_SEEN_SESSION_KEY):
        session.pop(key, None)
    viewer = session.get(SESSIONS_KEY)
    if viewer:
        keep = keep_for.pk if getattr(keep_for, "is_authenticated", False) else None
        kept = {key: opened for key, opened in viewer.items()
                if keep is not None and len(opened) > 2 and opened[2] == keep}
        if kept != viewer:
            session[SESSIONS_KEY] = kept
    return link_ids


def link_session_end_at_sign_in(sender: Any, request: HttpRequest | None = None, user: Any = None,
                                **kwargs: Any) -> None:
    """``user_logged_in``: whoever signs in starts without the links, second factors and viewer
    sessions of whoever used the browser before them (``link_session_end``); the signed-in person
    holds what their role and their own shares give, and opens a link again to hold it."""
    if request is not None and hasattr(request, "session"):
        link_session_end(request, keep_for=user)


def link_session_idle_end(request: HttpRequest, *, limit: int) -> None:
    """End the anonymous links this browser session opened because none was used for longer than
    ``limit`` seconds (apps.accounts.middleware): each recorded as an idle timeout
    (``auth.idle_timeout`` in its organization's trail, named by the link, ``via: link``), then
    dropped (``link_session_end``): the holder opens the link again, and passes its second factor
    again if it asks one."""
    user = getattr(request, "user", None)
    user = user if getattr(user, "is_authenticated", False) else None
    link_ids = request.session.get(policy.LINK_SESSION_KEY, [])
    for public_id, org_id in ShareLink.objects.filter(pk__in=link_ids).values_list("public_id", "organization_id"):
        record(action=audit_actions.AUTH_IDLE_TIMEOUT, actor=user, actor_label=f"link:{public_id}",
               organization_id=org_id, link=public_id, request=request,
               details={"limit_seconds": limit, "via": "link"})
    link_session_end(request, keep_for=user)


def grants_record_open_once(*, grants: Iterable[Grant], request: HttpRequest, actor: Any = None,
                            actor_label: str = "") -> None:
    """Record the opening of each of ``grants`` not yet opened in this session (a shared case or
    the patient portal shown: ``grant.opened``), and remember them in the session."""
    before = set(request.session.get(OPENED_SESSION_KEY, []))
    opened = set(before)
    for grant in grants:
        if grant.pk not in opened:
            grant_record_open(grant=grant, actor=actor, request=request, actor_label=actor_label)
            opened.add(grant.pk)
    if opened != before:  # the session is saved only when it changed
        request.session[OPENED_SESSION_KEY] = sorted(opened)


@transaction.atomic
def grant_record_download(*, grant: Grant, package_key: str, request: HttpRequest | None = None,
                          by_user=None, by_link_id: int | None = None, by_session: str = "",
                          sending: int = 0, package_etag: str = "", package_bytes: int = 0) -> int | None:
    """Count one download of ``package_key`` on ``grant``, begun by ``by_user`` (or the holder of
    link ``by_link_id`` in the browser session ``by_session``, ``policy.session_ref``): the id of
    its transfer's row (GrantDownload), which keeps the package counted (``package_etag``, its
    ETag, and ``package_bytes``, its size): only that same package is resumed under it
    (``grant_download_resume``). Unless the grant's download limit is used up or the grant
    is no longer live (revoked, which closing its case does, or expired since the download was
    decided, while its package was built): then None, nothing counted. ``sending``: the bytes
    this request is about to send, reserved on the transfer (``grant_download_sent`` settles).
    Claimed with a conditional UPDATE on the
    grant's own row, so two parallel downloads cannot both take the last one, nor one be counted
    on a grant revoked before it."""
    now = timezone.now()
    query = Grant.objects.filter(pk=grant.pk, revoked_at__isnull=True, starts_at__lte=now, expires_at__gt=now)
    if grant.download_limit is not None:
        query = query.filter(download_count__lt=grant.download_limit)
    if not query.update(download_count=F("download_count") + 1):
        return None
    transfer = GrantDownload.objects.create(grant=grant, package_key=package_key[:200], by_user=by_user,
                                            by_link_id=by_link_id, by_session=by_session, bytes_sent=sending,
                                            package_etag=package_etag[:64], package_bytes=package_bytes)
    grant.refresh_from_db(fields=["download_count"])
    # the one who began it: the user, and the link it came through (an anonymous holder has no user)
    link_ref = (ShareLink.objects.filter(pk=by_link_id).values_list("public_id", flat=True).first()
                if by_link_id is not None else None)
    record(action="grant.download", organization_id=grant.organization_id, target=grant, case=grant.case,
           request=request, actor=by_user, link=link_ref, actor_label=f"link:{link_ref}" if link_ref else "",
           details={"downloads": grant.download_count, "limit": grant.download_limit})
    return transfer.pk


#: a Range request continuing a transfer is a resume (not a new download) within this window
RESUME_WINDOW = timedelta(hours=24)


def grant_download_resume(*, transfer_id: int, sending: int, package_etag: str) -> bool:
    """A resumed transfer already counted (``policy.download_decide`` found it the actor's, begun
    within RESUME_WINDOW and not finished, of the same package), about to send ``sending`` bytes
    of the package whose ETag is ``package_etag``: reserve those bytes on its row and count
    nothing. False when the grant has been revoked, or the transfer finished, since the resume was
    decided (an expired grant's may be resumed: ``policy.download_decide``), when the package is
    not the one counted under it (another ETag: it changed since), or when these bytes would take
    what went out (or is going out) under it past FINISHED_AFTER_PACKAGES times the package it
    counted (its stored size, never the size of the package as it is now): a new download,
    counted, then. Reserved in the same conditional UPDATE, so resumes sent at once cannot each
    take the whole allowance."""
    now = timezone.now()
    return bool(GrantDownload.objects.filter(pk=transfer_id, grant__revoked_at__isnull=True, completed_at__isnull=True,
                                             started_at__gte=now - RESUME_WINDOW, package_etag=package_etag[:64],
                                             bytes_sent__lte=FINISHED_AFTER_PACKAGES * F("package_bytes") - sending)
                .update(last_activity_at=now, resumes=F("resumes") + 1, bytes_sent=F("bytes_sent") + sending))


#: what may go out under one counted transfer, in packages: its first request and the resumes
#: that re-send what dropped connections lost. Bytes handed to the network are not bytes the
#: client kept (a phone that drops near the end, a buffering proxy: the server "sent" all of a
#: small package at once), so reaching the last byte does not finish a transfer; twice the
#: package does, and no resume may take it past that (closed ranges short of the end included)
FINISHED_AFTER_PACKAGES = 2


def grant_download_sent(*, transfer_id: int, sent: int, reserved: int, total: int) -> None:
    """A request of a counted transfer ended, having sent ``sent`` of the ``reserved`` bytes it
    reserved of a ``total``-byte package: what it did not send is given back. The transfer is
    finished, and not resumed again (a Range request for it is a new download, counted), once
    FINISHED_AFTER_PACKAGES times the package went out under it."""
    change = sent - reserved
    finished = Case(When(bytes_sent__gte=FINISHED_AFTER_PACKAGES * total - change, then=Value(timezone.now())),
                    default=None)
    GrantDownload.objects.filter(pk=transfer_id).update(
        bytes_sent=F("bytes_sent") + change, completed_at=Coalesce(F("completed_at"), finished))


# --------------------------------------------------------------------------- shares from templates

def sharing_policy_for(organization_id: int) -> SharingPolicy:
    return SharingPolicy.objects.get_or_create(organization_id=organization_id)[0]


def sharing_policy_read(organization_id: int) -> SharingPolicy:
    """The organization's sharing policy, read without creating one (``_sharing_policies_read``):
    for a page that passes it (``org_policy=``) to each question it asks, so it is read once."""
    return _sharing_policies_read([organization_id])[organization_id]


def _sharing_policies_read(organization_ids: Iterable[int]) -> dict[int, SharingPolicy]:
    """The sharing policy of each organization, read without creating one: an organization that
    has none gets an unsaved one with the defaults (what ``sharing_policy_for`` would create)."""
    ids = set(organization_ids)
    found = {p.organization_id: p for p in SharingPolicy.objects.filter(organization_id__in=ids)}
    return {i: found.get(i) or SharingPolicy(organization_id=i) for i in ids}


@dataclass(frozen=True)
class ShareTerms:
    """What a share from a template gives, as the organization applies the template."""

    template: Template
    hours: int
    permissions: tuple[str, ...]
    renditions: tuple[str, ...]
    download_limit: int | None


def _anonymous_max_hours(org_policy: SharingPolicy) -> int:
    """The longest an anonymous link may last: the code's cap, or less by the organization's policy."""
    return min(ANONYMOUS_MAX_HOURS, org_policy.anonymous_max_hours or ANONYMOUS_MAX_HOURS)


def grant_max_hours(*, grant: Grant, org_policy: SharingPolicy | None = None) -> int:
    """The longest ``grant`` may last from its start, under the rules now in force: its template's
    maximum as the organization applies it and, for an anonymous link, the anonymous cap (code
    and organization). Extending never passes it (``grant_extend_ceiling``). ``org_policy``: the
    organization's SharingPolicy, when read already."""
    org_policy = org_policy or _sharing_policies_read([grant.organization_id])[grant.organization_id]
    template = template_for(grant.organization_id, grant.use_case,
                            template_settings=org_policy.template_settings or {})
    if grant.is_anonymous:
        return min(template.max_hours, _anonymous_max_hours(org_policy))
    return template.max_hours


#: an anonymous link with the original DICOM, refused (``policy.anonymous_original_refusal``): by
#: the organization's sharing policy (ValidationError code ``renditions``), or for want of a
#: second factor on the link (code ``second_factor``)
ANONYMOUS_ORIGINAL_REFUSED = {
    policy.AnonymousOriginalRefusal.NOT_ALLOWED: gettext_noop(
        "This organization does not allow the original DICOM on anonymous links: whoever is forwarded the "
        "link would get the patient's identified images. Share the compressed preview, or share the original "
        "with a named person."),
    policy.AnonymousOriginalRefusal.NO_SECOND_FACTOR: gettext_noop(
        "An anonymous link with the original DICOM needs a passcode or the patient's birth-date check: "
        "choose one under “Second factor for the link”, or share the compressed preview only."),
}
ANONYMOUS_ORIGINAL_CODES = {policy.AnonymousOriginalRefusal.NOT_ALLOWED: "renditions",
                            policy.AnonymousOriginalRefusal.NO_SECOND_FACTOR: "second_factor"}


def anonymous_original_check(*, org_policy: SharingPolicy, second_factor: str) -> None:
    """Refuse (ValidationError, ``ANONYMOUS_ORIGINAL_REFUSED``) an anonymous link with the original
    where the policy's rule does (``policy.anonymous_original_refusal``)."""
    refusal = policy.anonymous_original_refusal(allowed=org_policy.anonymous_allow_original,
                                                second_factor=second_factor or "")
    if refusal is not None:
        raise ValidationError(_(ANONYMOUS_ORIGINAL_REFUSED[refusal]), code=ANONYMOUS_ORIGINAL_CODES[refusal])


def share_terms(*, organization_id: int, use_case: str, recipient_kind: str, hours: int | None = None,
                renditions: Iterable[str] | None = None, download_limit: int | None = None,
                allow_download_original: bool | None = None, org_policy: SharingPolicy | None = None,
                second_factor: str = "") -> ShareTerms:
    """The expiry, permissions, renditions and download limit that ``share_create`` would give.

    The one place these are worked out: the share page's review step shows exactly what
    confirming creates, and refuses there what creating would refuse (ValidationError).
    ``org_policy``: the organization's SharingPolicy, when read already (then nothing is read).
    ``second_factor``: the link's (a ``SecondFactor`` value): an anonymous link with the original
    is refused unless the organization allows it and the link has one (``anonymous_original_check``)."""
    org_policy = org_policy or sharing_policy_for(organization_id)
    template = template_for(organization_id, use_case, template_settings=org_policy.template_settings or {})
    if recipient_kind not in template.recipients:
        raise ValidationError(_("This kind of share cannot go to that kind of recipient."), code="recipient_kind")
    hours = hours or template.default_hours
    if hours > template.max_hours:
        raise ValidationError(ngettext("At most %(hours)s hour for this kind of share.",
                                       "At most %(hours)s hours for this kind of share.",
                                       template.max_hours) % {"hours": template.max_hours}, code="hours")
    permissions = list(template.permissions)
    # none chosen is the use case's own (a grant with no renditions would allow every one)
    chosen = list(renditions) if renditions and template.choose_rendition else list(template.renditions)
    if template.choose_rendition and Rendition.ORIGINAL in chosen:
        permissions.append("download_original")
    if allow_download_original is False:
        permissions = [p for p in permissions if p != "download_original"]
        chosen = [r for r in chosen if r != Rendition.ORIGINAL] or [Rendition.PREVIEW]
    if recipient_kind == RecipientKind.ANONYMOUS:
        if Rendition.ORIGINAL in chosen or "download_original" in permissions:
            anonymous_original_check(org_policy=org_policy, second_factor=second_factor)
        hours = min(hours, _anonymous_max_hours(org_policy))
        limit = org_policy.anonymous_download_limit or 1
        download_limit = min(download_limit or limit, limit)
    # the renditions it gives: the original DICOM only with its download (``renditions_given``, as
    # the share page's table lists them: found by QA, it listed "Original DICOM" for a tumor board
    # review, which gives no download of it). Its grant names what it gives.
    chosen = list(renditions_given(chosen, permissions))
    return ShareTerms(template=template, hours=hours, permissions=tuple(permissions), renditions=tuple(chosen),
                      download_limit=download_limit)


def share_terms_gives(*, case: Case, terms: ShareTerms) -> tuple[str, ...]:
    """What a share of ``case`` on ``terms`` (``share_terms``) would give its holder, as the policy
    decides it (``policy.grants_give_holders``, on the grant ``share_create`` would make, unsaved):
    its permissions as its use case caps them and its renditions allow (a patient-education share
    gives the education copy's download, never "view"). The share review says this, not the
    permissions the grant will name."""
    now = timezone.now()
    grant = Grant(case=case, organization_id=case.organization_id, use_case=terms.template.key,
                  permissions=list(terms.permissions), renditions=list(terms.renditions),
                  download_limit=terms.download_limit, mfa_required=terms.template.mfa_required,
                  starts_at=now, expires_at=now + timedelta(hours=terms.hours))
    return policy.grants_give_holders([grant], now=now)[0]


def share_not_before_check(not_before: datetime | None) -> None:
    """Refuse a share's "not before" in the past (ValidationError, code ``not_before``): the link
    would open at once, so it says nothing, and a date such as 2001-01-01 is a mistake. A time
    within ``PAST_GRACE`` (the minute typed, a review before confirming) is taken as now, as the
    share's start always was. The share form asks this beside its field; ``share_create`` too."""
    if is_past(not_before):
        raise ValidationError(_("This time is in the past. Leave “Not before” empty for a link that opens at "
                                "once, or choose a later time."), code="not_before")


#: an anonymous link's term given on a share to a person, a group or an invited address (``share_link_terms_check``)
LINK_TERM_NOT_FOR_NAMED = gettext_noop(
    "Only an anonymous link takes this: a share to a person, a group or an invited address opens only for them, "
    "signed in. Leave it empty.")


def share_link_terms_given(values: Mapping[str, Any]) -> list[str]:
    """The anonymous link's terms (``ANONYMOUS_LINK_FIELDS``) given in ``values`` (a share
    request's fields: the form's data or cleaned data, the API's validated data): those neither
    left out nor blank."""
    return [name for name in ANONYMOUS_LINK_FIELDS if str(values.get(name) or "").strip()]


def share_link_terms_check(*, recipient_kind: str, values: Mapping[str, Any]) -> None:
    """Refuse the link's terms in ``values`` that a share to ``recipient_kind`` does not take
    (ValidationError with an error a field, each coded with its field's name): on a share to a
    person, a group or an invited address, an anonymous link's terms (``ANONYMOUS_LINK_FIELDS``:
    the sharer believed the share protected by them, and it is not); on an anonymous link, a
    passcode factor without a passcode, or a passcode without that factor (it would never be
    asked). The one rule: the share form asks it in ``clean`` (beside each field), the grants API
    before creating (400 beside each field). A kind that is not a ``RecipientKind`` is left to
    the check of the kind."""
    errors: dict[str, list[ValidationError]] = {}
    if recipient_kind == RecipientKind.ANONYMOUS:
        passcode_factor = values.get("second_factor") == SecondFactor.PASSCODE
        if passcode_factor and not values.get("passcode"):
            errors["passcode"] = [ValidationError(_("Choose a passcode of at least 6 characters."), code="passcode")]
        elif values.get("passcode") and not passcode_factor:
            errors["passcode"] = [ValidationError(
                _("A passcode is asked only when the second factor is “Passcode”: choose it above, or leave the "
                  "passcode empty."), code="passcode")]
    elif recipient_kind in RecipientKind.values:
        errors = {name: [ValidationError(_(LINK_TERM_NOT_FOR_NAMED), code=name)]
                  for name in share_link_terms_given(values)}
    if errors:
        raise ValidationError(errors)


#: a patient-education share to someone who works for the case's organization (``share_recipient_check``)
PATIENT_EDUCATION_TO_STAFF = gettext_noop(
    "This person works for the organization and sees the case through their role already: a patient-education "
    "share is for the patient. To share with a colleague, choose another template.")

#: a patient-education share to anyone but the case's patient (``policy.patient_education_recipient_refused``)
PATIENT_EDUCATION_NOT_THE_PATIENT = gettext_noop(
    "A patient-education share goes only to this case's patient, through the patient portal account their "
    "invitation linked to them, and this recipient is not that account. Check the recipient, or invite the "
    "patient from the case first (Invite the patient) and share with their account once they accept.")


#: a share of another template to a patient of the case's organization (``share_recipient_check``)
PATIENT_GIVEN_EDUCATION_ONLY = gettext_noop(
    "This person is a patient of this organization: a patient is given only their education copy, on the "
    "patient portal. To share with them, choose the patient-education template.")
#: the same, for one of a group share's members
GROUP_MEMBER_PATIENT = gettext_noop(
    "%(email)s is a patient of this organization: a patient is given only their education copy, on the "
    "patient portal. Leave them out of the group, or share with them through the patient-education template.")


def share_recipient_check(*, case: Case, use_case: str, recipient_kind: str, grantee: User | None = None,
                          grantee_email: str = "", group_members: Iterable[User] = ()) -> None:
    """Refuse a recipient the share's use case is not for (ValidationError, code
    ``recipient_email``, or ``group_emails`` for a group's member): a patient-education share to
    someone who works for the case's organization (``policy.patient_education_refused_to``); a
    share of any other template to a patient of that organization (``policy.share_refused_to_patient``:
    it would give them nothing but what a patient-education share gives). The share review asks it
    before showing what confirming creates; ``share_create`` asks it again."""
    from apps.accounts.models import User

    person = grantee if recipient_kind == RecipientKind.USER else None
    if recipient_kind == RecipientKind.EMAIL and grantee_email:
        person = User.objects.filter(email=grantee_email.lower(), is_active=True).first()
    if use_case == UseCase.PATIENT_EDUCATION:
        if person is not None and policy.patient_education_refused_to(person, case.organization_id):
            raise ValidationError(_(PATIENT_EDUCATION_TO_STAFF), code="recipient_email")
        if recipient_kind in (RecipientKind.USER, RecipientKind.EMAIL) and policy.patient_education_recipient_refused(
                case=case, person=person, email=grantee_email if recipient_kind == RecipientKind.EMAIL else ""):
            # not the case's patient's account (found by QA: another patient's portal showed this case)
            raise ValidationError(_(PATIENT_EDUCATION_NOT_THE_PATIENT), code="recipient_email")
        return
    if person is not None and policy.share_refused_to_patient(person, case.organization_id, use_case=use_case):
        raise ValidationError(_(PATIENT_GIVEN_EDUCATION_ONLY), code="recipient_email")
    if recipient_kind == RecipientKind.GROUP:
        for member in group_members:
            if policy.share_refused_to_patient(member, case.organization_id, use_case=use_case):
                raise ValidationError(_(GROUP_MEMBER_PATIENT) % {"email": member.email}, code="group_emails")


def share_create(*, case: Case, by: User, use_case: str, recipient_kind: str, grantee: User | None = None,
                 group_members: Iterable[User] = (), group_name: str = "", grantee_email: str = "",
                 hours: int | None = None, renditions: Iterable[str] | None = None, studies: Iterable[Any] = (),
                 download_limit: int | None = None, second_factor: str = "", passcode: str = "",
                 max_uses: int | None = None, not_before: datetime | None = None,
                 allow_download_original: bool | None = None,
                 request: HttpRequest | None = None) -> tuple[Grant, ShareLink, str]:
    """Share ``case`` (or named ``studies`` of it) through a template: a grant plus its link.

    The template gives permissions, renditions and expiry; the organization's SharingPolicy may
    only narrow them. Anonymous links need the organization's switch (as
    ``policy.anonymous_links_allowed`` reads it) and are held to at most 24 h (or less by
    policy), a download limit, and previews unless originals are chosen.
    """
    policy.require(by, policy.Action.SHARE_CASE, case, request=request)
    if recipient_kind == RecipientKind.ANONYMOUS and not policy.anonymous_links_allowed(case.organization):
        raise _anonymous_links_off(case=case, by=by, request=request)
    with transaction.atomic():
        return _share_create(case=case, by=by, use_case=use_case, recipient_kind=recipient_kind, grantee=grantee,
                             group_members=group_members, group_name=group_name, grantee_email=grantee_email,
                             hours=hours, renditions=renditions, studies=studies, download_limit=download_limit,
                             second_factor=second_factor, passcode=passcode, max_uses=max_uses,
                             not_before=not_before, allow_download_original=allow_download_original,
                             request=request)


def _anonymous_links_off(*, case: Case, by: User, request: HttpRequest | None) -> PermissionDenied:
    """Record a share refused because the organization switched anonymous links off; returns the
    exception to raise."""
    record(action="share.refused", actor=by, organization_id=case.organization_id, target=case,
           outcome="denied", request=request, details={"reason": "anonymous_links_off"})
    return PermissionDenied(_("Anonymous links are switched off for this organization."))


#: the most people one group share names (the form and the API refuse more)
GROUP_MAX_MEMBERS = 100


# Refusals name the share request's field they are about in their code (``hours``,
# ``recipient_kind``, ``recipient_email``, ``group_emails``, ``passcode``, ...: the share form's and
# the API's field names), so both show them beside that field.

def _share_create(*, case: Case, by: User, use_case: str, recipient_kind: str, grantee: User | None,
                  group_members: Iterable[User], group_name: str, grantee_email: str, hours: int | None,
                  renditions: Iterable[str] | None, studies: Iterable[Any], download_limit: int | None,
                  second_factor: str, passcode: str, max_uses: int | None, not_before: datetime | None,
                  allow_download_original: bool | None,
                  request: HttpRequest | None) -> tuple[Grant, ShareLink, str]:
    require_datetimes_in_range(not_before)  # before the expiry is counted from it
    share_not_before_check(not_before)
    terms = share_terms(organization_id=case.organization_id, use_case=use_case, recipient_kind=recipient_kind,
                        hours=hours, renditions=renditions, download_limit=download_limit,
                        allow_download_original=allow_download_original, second_factor=second_factor)
    template, hours, download_limit = terms.template, terms.hours, terms.download_limit
    permissions, chosen = list(terms.permissions), list(terms.renditions)
    anonymous = recipient_kind == RecipientKind.ANONYMOUS
    group_members = list(group_members)
    share_recipient_check(case=case, use_case=use_case, recipient_kind=recipient_kind, grantee=grantee,
                          grantee_email=grantee_email, group_members=group_members)
    if anonymous:
        grantee, group_members, grantee_email = None, (), ""
    elif recipient_kind == RecipientKind.USER and grantee is None:
        raise ValidationError(_("Choose the person to share with."), code="recipient_email")
    elif recipient_kind == RecipientKind.GROUP:
        group_members = list(group_members)
        if not group_members:
            raise ValidationError(_("Choose the people in the group."), code="group_emails")
        if len(group_members) > GROUP_MAX_MEMBERS:
            raise ValidationError(_("A group share names at most %(count)s people.") % {"count": GROUP_MAX_MEMBERS},
                                  code="group_emails")
    elif recipient_kind == RecipientKind.EMAIL and not grantee_email:
        raise ValidationError(_("Enter the e-mail address to invite."), code="recipient_email")
    now = timezone.now()
    starts_at = not_before if not_before and not_before > now else now
    grant = grant_create(case=case, grantee=grantee if recipient_kind == RecipientKind.USER else None,
                         group_members=group_members if recipient_kind == RecipientKind.GROUP else (),
                         group_name=group_name or (_("Group") if recipient_kind == RecipientKind.GROUP else ""),
                         grantee_email=grantee_email if recipient_kind == RecipientKind.EMAIL else "",
                         permissions=permissions, renditions=chosen, expires_at=starts_at + timedelta(hours=hours),
                         starts_at=starts_at, by=by, use_case=template.key, mfa_required=template.mfa_required,
                         download_limit=download_limit, studies=studies, request=request)
    link, raw = share_link_create(grant=grant, by=by, anonymous=anonymous, second_factor=second_factor,
                                  passcode=passcode, max_uses=max_uses, not_before=not_before, request=request)
    recipients = _share_recipients(recipient_kind, grantee, group_members)
    # told once the share is there for them, and outside its transaction: a group's e-mails are not
    # sent while the organization's audit chain is held
    transaction.on_commit(lambda: _share_notify(grant=grant, recipients=recipients))
    return grant, link, raw


#: what the recipients of a new share are told (no PHI: not the case's title, nor who the patient is)
SHARE_RECEIVED = gettext_noop("A case was shared with you in Lightbox. It is listed under Shared with me.")


def _share_recipients(recipient_kind: str, grantee: User | None, group_members: Iterable[User]) -> list[User]:
    """The accounts a new share is listed for at once in Shared with me: its named person, its
    group's members. Not a share to an address (listed once its link is opened, which the sharer
    passes on), nor an anonymous link."""
    if recipient_kind == RecipientKind.USER:
        return [grantee] if grantee is not None else []
    if recipient_kind == RecipientKind.GROUP:
        return list(group_members)
    return []


def _share_notify(*, grant: Grant, recipients: Iterable[User]) -> None:
    """Tell each recipient of a new share (an in-app notice and an e-mail, ``notify``) where to
    find it: the share itself is never in the e-mail (its link is given to the sharer once)."""
    from django.urls import reverse

    for user in recipients:
        notify(user=user, organization_id=grant.organization_id, verb="share.received",
               url=reverse("sharing:shared_with_me"), message=Deferred(SHARE_RECEIVED), case=grant.case)


def grant_extend_ceiling(*, grant: Grant, org_policy: SharingPolicy | None = None) -> datetime:
    """The latest expiry ``grant`` may be extended to: its start plus ``grant_max_hours``. The one
    place it is worked out: ``grant_extend`` refuses past it, the extension page shows it, and
    ``grant_extend_refusal`` says no extension is possible when it is not later than the expiry."""
    return grant.starts_at + timedelta(hours=grant_max_hours(grant=grant, org_policy=org_policy))


class ExtendRefusal:
    """Why a grant cannot be extended (``grant_extend_refusal``)."""

    ENDED = "ended"            # revoked, or its case closed
    USED_UP = "used_up"        # an anonymous link opened as often as it allows: more time lets nobody new in
    BOARD = "board"            # a tumor board's: it lasts for the board's review window
    ORIGINAL = "original"      # an approval of a request for the original: it lasts what its decider gave
    AT_MAXIMUM = "at_maximum"  # it ends at the latest expiry its kind of share allows already
    #: an anonymous link's share giving the original, which the organization no longer allows on
    #: it (``policy.anonymous_original_refusal_of``)
    ANONYMOUS_ORIGINAL = "anonymous_original"


#: extending or renewing an anonymous link's share that gives the original where the organization
#: no longer allows it on that link (``ExtendRefusal.ANONYMOUS_ORIGINAL``, ``RenewRefusal.ANONYMOUS_ORIGINAL``)
ANONYMOUS_ORIGINAL_NOT_RENEWED = gettext_noop(
    "This anonymous link gives the original DICOM, which the organization's sharing policy no longer allows "
    "on it (an anonymous link may carry the original only where the policy allows it, and with a passcode or "
    "the patient's birth-date check). It cannot be extended or renewed: create a new share instead.")

#: extending or renewing an approval of a request for the original (``ExtendRefusal.ORIGINAL``,
#: ``RenewRefusal.ORIGINAL``)
ORIGINAL_APPROVAL_FIXED = gettext_noop("Access to the original DICOM lasts for the time its approval gave and "
                                       "cannot be extended or renewed: for more time, a new request must be made "
                                       "and decided.")


#: the least extension that counts (the extension page's field takes minutes): a grant whose
#: expiry was worked out a moment before its start was stamped (a renewal, an invitation's
#: hand-off, the demo's shares) ends a fraction of a second before its ceiling, at its maximum all
#: the same; Extend offered there showed "Expires now" and "Latest possible" the same minute
EXTEND_STEP = timedelta(minutes=1)


def grant_extend_refusal(*, grant: Grant, org_policy: SharingPolicy | None = None) -> str | None:
    """Why no extension of ``grant`` can succeed, whatever new expiry is asked (an
    ``ExtendRefusal``), or None when a later expiry is possible.

    The one rule: ``grant_extend`` refuses with it (on the locked row), "My shares" offers Extend
    only where it says None (``grants_extendable``) and the extension page explains it instead of
    offering a form. A grant already ending at (or after) ``grant_extend_ceiling`` cannot be
    pushed later. Who may extend is the policy's (MANAGE_GRANT). Read-only."""
    if grant.revoked_at is not None or not grant.case.is_open:
        return ExtendRefusal.ENDED
    if grant.links_used_up:
        # extending keeps the link's count (``use_count``): nobody new could open it, only the
        # browsers that opened it would keep it longer. Renewing gives a fresh link with the same
        # use limit (``grant_renew``), where the rules allow it.
        return ExtendRefusal.USED_UP
    if grant.source == GrantSource.BOARD:
        # made by board_start for the board's review window (5 to 7 days, longer than the
        # maximum of the grants' own kind); the board's end revokes them
        return ExtendRefusal.BOARD
    if grant.source == GrantSource.ORIGINAL_REQUEST:
        # made by original_request_decide for the hours its decider gave (at most the
        # organization's original_approval_max_hours), not its use case's maximum: more time is a
        # new request, decided by whoever may decide it
        return ExtendRefusal.ORIGINAL
    if policy.anonymous_original_refusal_of(grant, org_policy=org_policy) is not None:
        # more time for a link the organization's rule no longer lets carry the original
        return ExtendRefusal.ANONYMOUS_ORIGINAL
    # the new expiry must be later than the current one and in the future: an expired share (not
    # revoked: it can be extended) whose ceiling has passed too has no such time left (its page
    # offered a form whose latest time was past, and "extended" the share to it)
    if grant_extend_ceiling(grant=grant, org_policy=org_policy) - max(grant.expires_at, timezone.now()) < EXTEND_STEP:
        return ExtendRefusal.AT_MAXIMUM
    return None


def grant_extend_refusal_message(*, grant: Grant, refusal: str, org_policy: SharingPolicy | None = None) -> str:
    """``refusal`` (of ``grant_extend_refusal``) in words, for the extension page and the
    service's ValidationError (``org_policy``: the organization's rules, when read already)."""
    if refusal == ExtendRefusal.BOARD:
        return _("A tumor board's access lasts for the board's review window and ends with the board; it cannot "
                 "be extended on its own.")
    if refusal == ExtendRefusal.ORIGINAL:
        return _(ORIGINAL_APPROVAL_FIXED)
    if refusal == ExtendRefusal.ANONYMOUS_ORIGINAL:
        return _(ANONYMOUS_ORIGINAL_NOT_RENEWED)
    if refusal == ExtendRefusal.AT_MAXIMUM:
        max_hours = grant_max_hours(grant=grant, org_policy=org_policy)
        return ngettext(
            "This share is already at its longest: a “%(kind)s” share lasts at most %(hours)s hour from its "
            "start (the maximum for this kind of share), and this one already ends then. For more time, create "
            "a new share, or renew this one where “Renew” is offered.",
            "This share is already at its longest: a “%(kind)s” share lasts at most %(hours)s hours from "
            "its start (the maximum for this kind of share), and this one already ends then. For more "
            "time, create a new share, or renew this one where “Renew” is offered.",
            max_hours) % {"kind": grant.get_use_case_display(), "hours": max_hours}
    if refusal == ExtendRefusal.USED_UP:
        return _("This link has been opened as many times as its use limit allows: more time would let nobody "
                 "new open it. Renew it for a fresh link with the same limit where “Renew” is offered, or create "
                 "a new share.")
    return _("A revoked grant or a closed case cannot be extended.")


def grant_renew_offered(*, grant: Grant, by: User, org_policy: SharingPolicy | None = None) -> bool:
    """Whether "My shares" offers ``by`` Renew on ``grant``: ``grants_renewable`` for one (the
    policy's RENEW_GRANT and ``grant_renew_refusal``). What the extension page and its refusal past
    the maximum say is the way to more time: Renew only where it is offered, else a new share."""
    return (policy.can(by, policy.Action.RENEW_GRANT, grant)
            and grant_renew_refusal(grant=grant, org_policy=org_policy) is None)


def grant_extend_past_maximum_message(*, grant: Grant, by: User, org_policy: SharingPolicy, max_hours: int,
                                      ceiling: datetime) -> str:
    """What an extension past ``ceiling`` is told: the latest date allowed, and the one way to more
    time that ``by`` has for this share: Renew where "My shares" offers it (``grant_renew_offered``),
    else a new share (a second-opinion or telehealth share is never renewable: naming Renew there
    sent the sharer looking for a button that is not offered; found by QA)."""
    from django.utils.formats import date_format

    values = {"hours": max_hours, "latest": date_format(timezone.localtime(ceiling), "SHORT_DATETIME_FORMAT")}
    if grant_renew_offered(grant=grant, by=by, org_policy=org_policy):
        return _("That is past the organization's maximum for this kind of share (%(hours)s h from its start): "
                 "the latest possible is %(latest)s. Renew it for a new review cycle instead.") % values
    return _("That is past the organization's maximum for this kind of share (%(hours)s h from its start): "
             "the latest possible is %(latest)s. This share cannot be renewed: for more time after that, "
             "create a new share.") % values


def grants_extendable(*, grants: Iterable[Grant]) -> list[bool]:
    """For each of ``grants``, in order: whether some later expiry is possible
    (``grant_extend_refusal`` says None), what "My shares" offers Extend on. Each organization's
    rules are read once for all the grants. Who may extend is the policy's (MANAGE_GRANT)."""
    grants = list(grants)
    policies = _sharing_policies_read(g.organization_id for g in grants)
    return [grant_extend_refusal(grant=g, org_policy=policies[g.organization_id]) is None for g in grants]


def grant_extend(*, grant: Grant, by: User, expires_at: datetime, reason: str,
                 request: HttpRequest | None = None) -> Grant:
    """Push ``grant``'s expiry later. Needs a written reason; audited; never past the template's
    maximum (as the organization sets it) counted from the grant's start (``grant_extend_ceiling``);
    refused whatever is asked where ``grant_extend_refusal`` says so."""
    policy.require(by, policy.Action.MANAGE_GRANT, grant, request=request)
    return _grant_extend(grant=grant, by=by, expires_at=expires_at, reason=reason, request=request)


@transaction.atomic
def _grant_extend(*, grant: Grant, by: User, expires_at: datetime, reason: str,
                  request: HttpRequest | None) -> Grant:
    require_datetimes_in_range(expires_at)
    grant = Grant.objects.select_for_update().select_related("case").get(pk=grant.pk)
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise ValidationError(_("Give a reason for the extension (at least 10 characters)."), code="reason")
    org_policy = _sharing_policies_read([grant.organization_id])[grant.organization_id]
    refusal = grant_extend_refusal(grant=grant, org_policy=org_policy)
    if refusal is not None:
        raise ValidationError(grant_extend_refusal_message(grant=grant, refusal=refusal, org_policy=org_policy),
                              code=refusal)
    if expires_at <= grant.expires_at:
        raise ValidationError(_("The new expiry must be later than the current one."), code="expires_at")
    if expires_at <= timezone.now():
        raise ValidationError(_("The new expiry must be in the future."), code="expires_at")
    max_hours = grant_max_hours(grant=grant, org_policy=org_policy)
    ceiling = grant_extend_ceiling(grant=grant, org_policy=org_policy)
    if expires_at > ceiling:
        raise ValidationError(grant_extend_past_maximum_message(grant=grant, by=by, org_policy=org_policy,
                                                                max_hours=max_hours, ceiling=ceiling),
                              code="expires_at")
    GrantExtension.objects.create(grant=grant, by=by, previous_expires_at=grant.expires_at,
                                  new_expires_at=expires_at, reason=reason)
    previous = grant.expires_at
    grant.expires_at = expires_at
    # a share brought back to life names its case as it is now again, and as it is when it ends
    # next (``grants_case_title_keep``), not as it was when it first ended
    grant.case_title_at_end = None
    grant.save(update_fields=["expires_at", "case_title_at_end"])
    record(action="grant.extended", actor=by, organization_id=grant.organization_id, target=grant,
           case=grant.case, request=request,
           details={"from": previous.isoformat(), "to": expires_at.isoformat(), "reason_chars": len(reason)})
    return grant


class RenewRefusal:
    """Why a grant cannot be renewed (``grant_renew_refusal``)."""

    NOT_RENEWABLE = "not_renewable"   # its template is not renewable
    RENEWED = "renewed"               # renewed already: its newest share is the one to renew
    REVOKED = "revoked"
    CASE_CLOSED = "case_closed"
    ANONYMOUS_OFF = "anonymous_off"   # an anonymous link, and the organization switched them off
    RECIPIENT_KIND = "recipient_kind"  # its template (as in force now) takes no such recipient
    BOARD = "board"                   # a tumor board's: it ends with the board (board_end)
    ORIGINAL = "original"             # an approval of a request for the original (ORIGINAL_APPROVAL_FIXED)
    ANONYMOUS_ORIGINAL = "anonymous_original"  # an anonymous link with the original, no longer allowed on it


RENEW_REFUSAL_MESSAGES = {
    RenewRefusal.NOT_RENEWABLE: gettext_noop("This kind of share cannot be renewed; create a new share."),
    RenewRefusal.RENEWED: gettext_noop("This share was renewed already; renew its newest share instead."),
    RenewRefusal.REVOKED: gettext_noop("A revoked share cannot be renewed; create a new share if it is needed."),
    RenewRefusal.CASE_CLOSED: gettext_noop("This case is closed; nothing can be shared from it."),
    RenewRefusal.ANONYMOUS_OFF: gettext_noop("Anonymous links are switched off for this organization."),
    RenewRefusal.RECIPIENT_KIND: gettext_noop("This kind of share cannot go to that kind of recipient."),
    RenewRefusal.BOARD: gettext_noop("A tumor board's access ends with its board and cannot be renewed on its own."),
    RenewRefusal.ORIGINAL: ORIGINAL_APPROVAL_FIXED,
    RenewRefusal.ANONYMOUS_ORIGINAL: ANONYMOUS_ORIGINAL_NOT_RENEWED,
}


def grant_renew_refusal(*, grant: Grant, org_policy: SharingPolicy | None = None) -> str | None:
    """Why renewing ``grant`` cannot succeed (a ``RenewRefusal``), or None when it can.

    The one rule: ``grant_renew`` refuses with it (on the locked row) and "My shares" offers Renew
    only where it says None (``grants_renewable``). Who may renew is the policy's (RENEW_GRANT).
    A revoked grant stays revoked: renewing it would undo the revocation. A grant renewed once
    (it is then revoked, reason "renewed", and has a renewal) is not renewed again, so two
    renewals at once make one new share. The renewal is held to the rules now in force
    (``_renewal_terms``): a recipient its template no longer takes, or nothing left of what it
    gave, is refused here, not half-way through the renewal.

    Read-only (no audit record, no row created): the page asks it for every grant it lists.
    Uses a prefetched ``renewals`` when there is one; ``org_policy``: the organization's
    SharingPolicy, when read already."""
    if grant.source == GrantSource.BOARD:
        # a renewal is a new grant outside the board's own (board.grants): ending the board,
        # which revokes those, would have left it live
        return RenewRefusal.BOARD
    if grant.source == GrantSource.ORIGINAL_REQUEST:
        # a renewal revokes it (reason "renewed") and its copy is nobody's approved_grant: the end
        # of the share it was asked under (grants_revoke), or of a board, would have left it live
        return RenewRefusal.ORIGINAL
    template = TEMPLATES.get(grant.use_case)
    if template is None or not template.renewable:
        return RenewRefusal.NOT_RENEWABLE
    if grant.revoke_reason == "renewed" or any(True for _r in grant.renewals.all()):
        return RenewRefusal.RENEWED
    if grant.revoked_at is not None:
        return RenewRefusal.REVOKED
    if not grant.case.is_open:
        return RenewRefusal.CASE_CLOSED
    if grant.is_anonymous and not policy.anonymous_links_allowed(grant.organization):
        return RenewRefusal.ANONYMOUS_OFF
    try:
        _renewal_terms(grant=grant, org_policy=org_policy or _sharing_policies_read([grant.organization_id])[
            grant.organization_id])
    except _RenewalRefused as refused:
        return refused.reason
    return None


class _RenewalRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _renewal_terms(*, grant: Grant, hours: int | None = None,
                   org_policy: SharingPolicy | None = None) -> tuple[ShareTerms, list[str], list[str]]:
    """What renewing ``grant`` gives under the rules now in force: the terms a new share of its
    template to its kind of recipient gets (``share_terms``), and its permissions and renditions
    within them (a renewal never widens a share). Raises _RenewalRefused when the rules refuse
    the renewal whatever is asked, and share_terms' ValidationError for a bad ``hours``."""
    # the renewal's link keeps the old one's second factor (``_grant_renew``): read only where it
    # decides (an anonymous link's share naming the original), not for every row of My shares
    second_factor = ""
    if grant.is_anonymous and "download_original" in grant.permissions:
        old_link = max(grant.links.all(), key=lambda link: link.created_at, default=None)
        second_factor = old_link.second_factor if old_link else ""
    try:
        terms = share_terms(organization_id=grant.organization_id, use_case=grant.use_case,
                            recipient_kind=_recipient_kind(grant), hours=hours,
                            renditions=grant.renditions or None, download_limit=grant.download_limit,
                            org_policy=org_policy, second_factor=second_factor)
    except ValidationError as exc:
        if exc.code == "recipient_kind":
            raise _RenewalRefused(RenewRefusal.RECIPIENT_KIND) from None
        if exc.code in ANONYMOUS_ORIGINAL_CODES.values() and grant.is_anonymous:
            raise _RenewalRefused(RenewRefusal.ANONYMOUS_ORIGINAL) from None
        raise
    permissions = [p for p in terms.permissions if p in grant.permissions]
    renditions = [r for r in grant.renditions if r in terms.renditions]
    if not permissions or (grant.renditions and not renditions):
        raise _RenewalRefused(RenewRefusal.NOT_RENEWABLE)
    return terms, permissions, renditions


def grants_renewable(*, grants: Iterable[Grant], by: User, request: HttpRequest | None = None) -> list[bool]:
    """For each of ``grants``, in order: whether ``by`` may renew it (the policy's RENEW_GRANT)
    and renewing can succeed (``grant_renew_refusal``), the two questions ``grant_renew`` asks:
    what "My shares" offers. Read-only, and the policy and each organization's rules are read
    once for all the grants (so the page's queries do not grow with its list). With ``request``
    (the page's), the policy decides on what the request read (``policy.request_facts``)."""
    grants = list(grants)
    allowed = policy.can_each(by, policy.Action.RENEW_GRANT, grants, facts=policy.request_facts(request, by))
    policies = _sharing_policies_read(g.organization_id for g in grants)
    return [may and grant_renew_refusal(grant=g, org_policy=policies[g.organization_id]) is None
            for g, may in zip(grants, allowed, strict=True)]


def _recipient_kind(grant: Grant) -> str:
    if grant.is_anonymous:
        return RecipientKind.ANONYMOUS
    if grant.grantee_id is None and grant.grantee_email:
        return RecipientKind.EMAIL
    if grant.grantee_id is None:
        return RecipientKind.GROUP
    return RecipientKind.USER


def grant_renew(*, grant: Grant, by: User, hours: int | None = None,
                request: HttpRequest | None = None) -> tuple[Grant, ShareLink, str]:
    """A new review cycle: a fresh grant with the same recipient and scope, and a fresh link; the
    old grant and its links end now. Only templates marked renewable.

    Security contract: renewing makes a new share and hands ``by`` its link, so it needs what
    sharing needs (policy RENEW_GRANT: managing the grant and SHARE_CASE on its case; refusals
    recorded). The new share is held to the rules now in force, as a new share would be
    (``share_terms``: the template's maximum as the organization applies it, the anonymous cap
    and download limit, the organization's anonymous-link switch), and keeps every restriction
    of the old one: recipient, studies, permissions and renditions (never more than the template
    now gives), MFA, download limit, and its link's second factor (the same passcode) and use
    limit. Never a revoked grant, never one renewed already (``grant_renew_refusal``, checked on
    the locked row)."""
    policy.require(by, policy.Action.RENEW_GRANT, grant, request=request)
    try:
        return _grant_renew(grant=grant, by=by, hours=hours, request=request)
    except _AnonymousLinksOff:  # recorded once the renewal's transaction is rolled back
        raise _anonymous_links_off(case=grant.case, by=by, request=request) from None


class _AnonymousLinksOff(Exception):
    pass


@transaction.atomic
def _grant_renew(*, grant: Grant, by: User, hours: int | None,
                 request: HttpRequest | None) -> tuple[Grant, ShareLink, str]:
    # the case first (as case_close: the case, then its grants), then the studies it names, then
    # the grant (as study_delete: the study, then the grants naming it): a renewal and a close or
    # a deletion at once wait for each other, never deadlock. Whether the case is still open is
    # grant_renew_refusal's question, asked on the locked grant below.
    _case_open_locked(grant.case)
    studies = list(grant.studies.all())
    _studies_lock(studies=studies, case=grant.case)
    # one renewal at a time: a second one waits here, then finds this grant renewed
    grant = (Grant.objects.select_for_update(of=("self",)).select_related("case", "case__organization",
                                                                          "organization")
             .get(pk=grant.pk))
    org_policy = sharing_policy_for(grant.organization_id)  # read once, for the question and the terms
    refusal = grant_renew_refusal(grant=grant, org_policy=org_policy)
    if refusal == RenewRefusal.ANONYMOUS_OFF:
        raise _AnonymousLinksOff
    if refusal is not None:
        raise ValidationError(_(RENEW_REFUSAL_MESSAGES[refusal]), code="renew")
    # the rules allow a renewal (just asked): what is left to refuse here is a bad ``hours``
    terms, permissions, renditions = _renewal_terms(grant=grant, hours=hours, org_policy=org_policy)
    old_link = grant.links.order_by("-created_at").first()
    now = timezone.now()
    new = grant_create(case=grant.case, grantee=grant.grantee, group_members=list(grant.group_members.all()),
                       group_name=grant.group_name, grantee_email=grant.grantee_email,
                       permissions=permissions, renditions=renditions,
                       expires_at=now + timedelta(hours=terms.hours), by=by, use_case=grant.use_case,
                       mfa_required=grant.mfa_required or terms.template.mfa_required,
                       download_limit=terms.download_limit, source=grant.source, renewed_from=grant,
                       studies=studies, request=request)
    grants_revoke(grants=[grant], by=by, reason="renewed", request=request)
    link, raw = share_link_create(
        grant=new, by=by, anonymous=old_link.anonymous if old_link else grant.is_anonymous,
        second_factor=old_link.second_factor if old_link else "",
        passcode_hash=old_link.passcode_hash if old_link else "",
        max_uses=old_link.max_uses if old_link else None, request=request)
    return new, link, raw


# --------------------------------------------------------------------------- original DICOM requests

#: the most of a notice an e-mail's subject holds (the body holds all of it)
SUBJECT_MAX = 100


def _subject_text(message: str) -> str:
    """``message`` as an e-mail's subject: whole when it fits in SUBJECT_MAX characters, else cut
    at the last word that fits, with an ellipsis (a cut in mid-word read "ya pue")."""
    if len(message) <= SUBJECT_MAX:
        return message
    cut = message[:SUBJECT_MAX - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "…"


def notify(*, user: User, organization_id: int | None, verb: str, message: str, url: str = "",
           case: Any = None, board: Any = None) -> Notification:
    """An in-app notice plus an e-mail. ``message`` must hold no PHI (no names, MRNs, dates of
    birth, clinical text): it says that something happened and where to look. ``case`` or
    ``board``: what it is about, which the in-app notice names by its title
    (``Notification.message_shown``); the e-mail never does (a case's title is free text that may
    name the patient), nor is the title stored in the text."""
    note = Notification.objects.create(user=user, organization_id=organization_id, verb=verb, url=url,
                                       case=case, board=board, **i18n.explained(message, field="message"))
    from apps.accounts.services import language_written_to

    # the e-mail: in the recipient's own language, else the portal's default; never in the
    # language of the request that caused it (another person's)
    with translation.override(language_written_to(user)):
        message = i18n.translate(message)
        subject = _("[Lightbox] %(message)s") % {"message": _subject_text(message)}
    body = message + ("\n\n" + site_url(url) if url else "")  # a mail is read away from the portal
    send_mail(subject=subject, message=body, from_email=None, recipient_list=[user.email], fail_silently=True)
    return note


def _deciders(req: OriginalRequest) -> list[User]:
    """Who is told of ``req``, a new request for the original DICOM: those who may decide it now
    (``policy.can`` DECIDE_ORIGINAL_REQUEST: the organization's radiologists; its share's maker,
    its case's creator and responsible clinician while their role there may download originals),
    never its requester. Not everyone who once owned the share or case: someone who left the
    organization, or whose role no longer decides, was still told of its requests, in-app and by
    e-mail, though deciding was refused to them (found by review)."""
    from apps.accounts.models import User
    from apps.organizations.models import Membership

    grant = req.grant
    ids = {grant.created_by_id, grant.case.created_by_id, grant.case.responsible_clinician_id}
    ids |= set(Membership.objects.filter(organization_id=grant.organization_id, is_active=True,
                                         role__in=policy.roles_with(policy.Action.DECIDE_ORIGINAL_REQUEST))
               .values_list("user_id", flat=True))
    users = User.objects.filter(pk__in=[i for i in ids if i], is_active=True).exclude(pk=req.requested_by_id)
    # all of them decided at once (their memberships in one query): asking ``can`` of each cost a
    # query a radiologist, in the request's transaction (found by review)
    return policy.users_who_can(users.order_by("pk"), policy.Action.DECIDE_ORIGINAL_REQUEST, req)


def original_request_create(*, grant: Grant, by: User, reason: str,
                            request: HttpRequest | None = None) -> OriginalRequest:
    """A preview recipient asks for the original DICOM. Deciders are notified (no PHI).

    Who may ask is the policy's (``REQUEST_ORIGINAL`` on the grant): anyone else is refused and
    the refusal recorded; the grant's recipient who can download the original already, or whose
    earlier request under it waits for a decision, is told so (a ValidationError: one request at a
    time). The request, its audit event and the notices are written in one transaction: no
    request without its event, no event for a request that was not made.

    One request a person and case at a time, whichever share of the case it is asked under (the
    policy's ``PENDING``, ``policy.pending_original_requests``): a recipient given a second share of
    a case they asked about (a tumor board's) is refused a second request, told when and under
    which share the waiting one was made (``original_request_pending_message``). One made under a
    share that has run out waits for nothing and does not stop a new one under a live share; the
    new one replaces it (``_original_requests_supersede``), so extending that share later does not
    make two."""
    reason = (reason or "").strip()
    _original_request_refuse(grant=grant, by=by, request=request)
    if len(reason) < 10:
        raise ValidationError(_("Say why you need the original (at least 10 characters)."))
    with transaction.atomic():
        return _original_request_create(grant=grant, by=by, reason=reason, request=request)


def _original_request_refuse(*, grant: Grant, by: User, request: HttpRequest | None) -> None:
    """Refuse ``by`` a request for the original DICOM under ``grant`` unless the policy lets them
    ask now (``policy.original_request_refusal``): told why when it is theirs to know (they can
    download the original already, or an earlier request of theirs waits for a decision: a
    ValidationError), refused and recorded otherwise (PermissionDenied). Asked before the case's
    lock and again under it, with the same answers (``_original_request_create``)."""
    refusal = policy.original_request_refusal(by, grant)
    if refusal is policy.OriginalRefusal.HAS_ORIGINAL:
        raise ValidationError(_("You can already download the original DICOM."), code="has_original")
    if refusal is policy.OriginalRefusal.PENDING:
        raise ValidationError(original_request_pending_message(user=by, case_id=grant.case_id), code="pending")
    policy.require_decided(refusal is None, by, policy.Action.REQUEST_ORIGINAL, grant, request=request)


#: a second request while the first waits for a decision (the policy's OriginalRefusal.PENDING),
#: when the waiting one is no longer there to be named (decided meanwhile)
ORIGINAL_REQUEST_PENDING = gettext_noop("You already asked; the request is waiting for a decision.")


def original_request_pending_message(*, user: User, case_id: int) -> str:
    """What a recipient asking again for the original DICOM of a case is told: when, and under
    which of their shares, they asked already (``policy.pending_original_requests``, the request
    the policy refuses a second one for)."""
    from django.utils.formats import date_format

    req = policy.pending_original_requests(user, [case_id]).get(case_id)
    if req is None:
        return _(ORIGINAL_REQUEST_PENDING)
    return _("You already asked for the original DICOM of this case on %(sent)s, under the share “%(share)s”; "
             "that request is waiting for a decision.") % {
        "sent": date_format(timezone.localtime(req.created_at), "SHORT_DATETIME_FORMAT"),
        "share": req.grant.purpose_label}


def _original_request_create(*, grant: Grant, by: User, reason: str, request: HttpRequest | None) -> OriginalRequest:
    from apps.cases.models import Case

    # the case's row is locked first, then the grant's (the order deciding and closing the case
    # take them), so two submits at once (a double tap, two tabs, or two shares of one case) run
    # one after the other and the second sees the first's request: one request a person and case,
    # not two. (FOR NO KEY UPDATE: rows that merely reference them are not held up.)
    Case.objects.select_for_update(no_key=True).filter(pk=grant.case_id).values_list("pk", flat=True).first()
    Grant.objects.select_for_update(no_key=True).filter(pk=grant.pk).values_list("pk", flat=True).first()
    # and the whole rule is asked again on the rows as they are now, not only whether a request
    # waits: between the caller's check and the lock the share may have been revoked, or an
    # earlier request of theirs approved (after its share was extended), so that they can
    # download the original already and a second approval would give it twice (found by review)
    _original_request_refuse(grant=Grant.objects.select_related("case").get(pk=grant.pk), by=by, request=request)
    req = OriginalRequest(organization_id=grant.organization_id, case=grant.case, grant=grant, requested_by=by,
                          reason=reason)
    # the one it replaces is closed before it is written: one request waits a person and case, in
    # the database too (``OriginalRequest.Meta``'s ``one_pending_original_request``)
    _original_requests_supersede(new=req, by=by, request=request)
    req.save()
    record(action="original_request.created", actor=by, organization_id=grant.organization_id, target=req,
           case=grant.case, request=request, details={"grant": str(grant.public_id)})
    from django.urls import reverse

    url = reverse("sharing:original_request_decide", kwargs={"originalrequest_id": req.public_id})
    for user in _deciders(req):
        notify(user=user, organization_id=grant.organization_id, verb="original_request.created", url=url,
               message=Deferred(gettext_noop("A recipient asked for the original DICOM of a shared case.")),
               case=grant.case)
    notify(user=by, organization_id=grant.organization_id, verb="original_request.sent",
           url=reverse("sharing:shared_with_me"),
           message=Deferred(gettext_noop("Your request for the original DICOM was sent.")), case=grant.case)
    return req


def _original_requests_supersede(*, new: OriginalRequest, by: User, request: HttpRequest | None) -> int:
    """Close the requester's other requests for the original DICOM of ``new``'s case still
    marked as waiting: replaced by ``new``. Only one that waits for nothing is left by then (the
    policy's PENDING refused ``new`` otherwise): made under a share that has run out and not been
    revoked (``policy.original_requests_decidable``), which an extension of that share would bring
    back beside ``new``, so that the requester had two requests waiting for the case and the
    deciders' list showed both (found by review of a8bf58d). One request a person and case, in
    the database too: the newest, which the requester has just made and the deciders see.
    Closed as ``grants_revoke`` closes those of a share that ended (withdrawn, no decider), its
    share having ended, recorded as ``original_request.withdrawn`` with reason ``superseded`` and
    the request that replaced it. Extending a share is not refused for it (the access it gives is
    the sharer's to decide, whatever was asked under it), nor does it revive the request. In the
    caller's transaction, with the case's row locked (``_original_request_create``), so two at
    once are decided one after the other; before ``new`` is written (its public id is known),
    which the database's ``one_pending_original_request`` asks. Returns how many."""
    older = (OriginalRequest.objects.select_for_update(of=("self",)).select_related("grant")
             .filter(case_id=new.case_id, requested_by=by, status=OriginalRequestStatus.PENDING))
    if new.pk is not None:
        older = older.exclude(pk=new.pk)
    return _original_requests_close(list(older.order_by("pk")), by=by, case=new.case, request=request,
                                    details=lambda req: {"reason": "superseded", "grant": str(req.grant.public_id),
                                                         "superseded_by": str(new.public_id)})


def original_request_decide(*, original_request: OriginalRequest, by: User, approve: bool, hours: int | None = None,
                            note: str = "", request: HttpRequest | None = None) -> OriginalRequest:
    """Approve (a new grant with download_original for a limited time) or decline. Both sides
    are notified; audited."""
    policy.require(by, policy.Action.DECIDE_ORIGINAL_REQUEST, original_request, request=request)
    return _original_request_decide(original_request=original_request, by=by, approve=approve, hours=hours,
                                    note=note, request=request)


#: deciding a request whose share is no longer its requester's (``policy.original_request_decidable``)
ORIGINAL_REQUEST_LAPSED = gettext_noop("This request can no longer be decided: the share it was made under has "
                                       "ended, or is no longer the requester's.")


@transaction.atomic
def _original_request_decide(*, original_request: OriginalRequest, by: User, approve: bool, hours: int | None,
                             note: str, request: HttpRequest | None) -> OriginalRequest:
    from apps.cases.models import Case

    # decided on the rows as the database has them, locked in the order closing the case takes
    # them (the case, then its grants, then their requests: ``grants_revoke``): a revocation or a
    # close that committed first is seen here (refused), or it waits for this decision and then
    # withdraws what is left. Approving then locks the case again (``grant_create``), already ours.
    Case.objects.select_for_update(no_key=True).filter(pk=original_request.case_id).values_list("pk").first()
    Grant.objects.select_for_update(no_key=True).filter(pk=original_request.grant_id).values_list("pk").first()
    req = (OriginalRequest.objects.select_for_update(of=("self",))
           .select_related("grant", "grant__case", "case", "requested_by").get(pk=original_request.pk))
    if req.status != OriginalRequestStatus.PENDING:
        raise ValidationError(_("This request was already decided."))
    if not policy.original_request_decidable(req):
        raise ValidationError(_(ORIGINAL_REQUEST_LAPSED), code="lapsed")
    org_policy = sharing_policy_for(req.organization_id)
    limit = org_policy.original_approval_max_hours or 48
    hours = hours or min(24, limit)
    ends_with_share = False
    if approve:
        if hours > limit:
            raise ValidationError(ngettext("At most %(hours)s hour.", "At most %(hours)s hours.", limit)
                                  % {"hours": limit})
        if not req.case.is_open:
            raise ValidationError(_("This case is closed; nothing can be shared from it."))
        # never past the share it was asked under (live: original_request_decidable): the
        # original follows that share, and does not outlast it
        expires_at = timezone.now() + timedelta(hours=hours)
        ends_with_share = req.grant.expires_at < expires_at
        if ends_with_share:
            expires_at = req.grant.expires_at
        req.approved_grant = grant_create(
            case=req.case, grantee=req.requested_by, permissions=["view", "download_original"],
            renditions=[Rendition.ORIGINAL], expires_at=expires_at, by=by,
            source=GrantSource.ORIGINAL_REQUEST, use_case=req.grant.use_case, mfa_required=req.grant.mfa_required,
            download_limit=req.grant.download_limit,
            studies=list(req.grant.studies.all()) if hasattr(req.grant, "studies") else (), request=request)
    req.status = OriginalRequestStatus.APPROVED if approve else OriginalRequestStatus.DECLINED
    req.decided_by = by
    req.decided_at = timezone.now()
    req.decision_note = (note or "").strip()
    req.save()
    record(action=f"original_request.{req.status}", actor=by, organization_id=req.organization_id, target=req,
           case=req.case, request=request,
           details={"hours": hours if approve else None, "ends_with_share": ends_with_share})
    from django.urls import reverse

    if not approve:
        message = Deferred(gettext_noop("Your request for the original DICOM was declined."))
    elif ends_with_share:
        message = Deferred(gettext_noop("Your request for the original DICOM was approved until the share it "
                                        "was asked under ends."))
    else:
        message = Deferred.ngettext("Your request for the original DICOM was approved for %(hours)s hour.",
                                    "Your request for the original DICOM was approved for %(hours)s hours.",
                                    "hours", hours=hours)
    notify(user=req.requested_by, organization_id=req.organization_id, verb=f"original_request.{req.status}",
           url=reverse("sharing:shared_with_me"), message=message, case=req.case)
    notify(user=by, organization_id=req.organization_id, verb=f"original_request.{req.status}",
           url=reverse("sharing:my_shares"),
           message=Deferred(gettext_noop("You decided a request for the original DICOM.")), case=req.case)
    return req


def template_table() -> list[dict[str, Any]]:
    """The use-case table, for pages and the API."""
    return [{"key": t.key, "label": t.label, "renditions": list(t.gives_renditions), "permissions": list(t.permissions),
             "recipients": list(t.recipients), "default_hours": t.default_hours, "max_hours": t.max_hours,
             "mfa_required": t.mfa_required, "renewable": t.renewable} for t in TEMPLATES.values()]


#: the settings of an organization's sharing policy beside its templates' (``sharing_policy_update``)
SHARING_POLICY_VALUES = ("anonymous_max_hours", "anonymous_download_limit", "anonymous_allow_original",
                         "original_approval_max_hours")


def sharing_policy_update(*, organization_id: int, by: User, values: dict[str, Any], template_settings: dict,
                          request: HttpRequest | None = None) -> SharingPolicy:
    """Save an organization's sharing defaults and maxima (org admins); audited."""
    from apps.organizations.models import Organization

    organization = Organization.objects.get(pk=organization_id)
    policy.require(by, policy.Action.MANAGE_ORGANIZATION, organization, request=request)
    with transaction.atomic():
        sp = SharingPolicy.objects.select_for_update().get_or_create(organization_id=organization_id)[0]
        for name in SHARING_POLICY_VALUES:
            if name in values:  # one left out keeps its value
                setattr(sp, name, values[name])
        sp.template_settings = template_settings
        sp.save()
        record(action="sharing_policy.updated", actor=by, organization_id=organization_id, target=sp,
               request=request, details={**{k: getattr(sp, k) for k in SHARING_POLICY_VALUES},
                                         "templates": template_settings})
    return sp


# --------------------------------------------------------------------------- expiry

def share_expiries_record(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Record share.expired once for every grant (and so its links, which live as long as it
    does) whose ``expires_at`` has passed without a revocation. Each grant is claimed first with a
    conditional UPDATE (``expiry_recorded_for`` := its ``expires_at``), in the same transaction as
    the event, so two runs never record one expiry twice; a grant extended after it expired and
    expiring again is recorded again. Returns the number recorded."""
    now = now or timezone.now()
    due = (Grant.objects.filter(revoked_at__isnull=True, expires_at__lte=now)
           .exclude(expiry_recorded_for=F("expires_at")))
    count = 0
    for grant_id in list(due.order_by("expires_at").values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            claimed = (Grant.objects.filter(pk=grant_id, revoked_at__isnull=True, expires_at__lte=now)
                       .exclude(expiry_recorded_for=F("expires_at")).update(expiry_recorded_for=F("expires_at")))
            if not claimed:
                continue
            grant = Grant.objects.select_related("case").get(pk=grant_id)
            links = [str(v) for v in grant.links.filter(revoked_at__isnull=True).values_list("public_id", flat=True)]
            record(action="share.expired", organization_id=grant.organization_id, target=grant, case=grant.case,
                   actor_label="system", details={"expires_at": grant.expires_at.isoformat(), "links": links,
                                                  "use_case": grant.use_case, "opened": grant.open_count,
                                                  "downloads": grant.download_count})
            count += 1
    return count
