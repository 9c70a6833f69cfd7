"""Identity writes: invitations, accepting them, ending sessions, SSO settings. Keyword-only,
atomic, audited; audit details and e-mails carry ids and figures only, never patient data."""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from apps.accounts.models import (
    Invitation,
    InvitationKind,
    SSOConfig,
    SupersededInvitationToken,
    User,
    new_security_stamp,
)
from apps.audit.services import record
from apps.core.site import site_url
from apps.organizations.models import Membership, Organization, Role
from apps.sharing import policy
from apps.sharing.policy import Action

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.cases.models import Case

#: the sharing template an invitation's grants follow (permissions, renditions, lifetime, MFA)
INVITATION_USE_CASE = "consultant"

#: the shortest time between two e-mails of one invitation: "send again" pressed repeatedly (or
#: twice at once) does not flood the invitee's mailbox
INVITATION_RESEND_INTERVAL = timedelta(minutes=1)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def invitation_url(raw: str, request: HttpRequest | None = None) -> str:
    path = reverse("accounts:invitation_accept", kwargs={"token": raw})
    if request is not None:
        return request.build_absolute_uri(path)
    return site_url(path)


# --- a person's language ----------------------------------------------------------------------

#: the session key where a choice made before signing in waits for the account it is made for
LANGUAGE_CHOSEN = "lightbox_language_chosen"


def language_supported(code: str | None) -> str:
    """``code`` (or its generic language: "es-AR" gives "es") if the portal is translated into
    it, else "" (Django's own lookup, as LocaleMiddleware uses)."""
    try:
        return translation.get_supported_language_variant((code or "").strip().lower().replace("_", "-"))
    except LookupError:
        return ""


def language_of(user: User | None) -> str:
    """The language to write to ``user`` in (an e-mail their action did not cause): theirs, else
    the current request's, else the portal's default."""
    return (language_supported(getattr(user, "language", "")) or language_supported(translation.get_language())
            or settings.LANGUAGE_CODE)


def language_written_to(user: User) -> str:
    """The language of what someone else's action sends ``user`` (a notice's e-mail, read away
    from the request that caused it): the language they chose (``User.language``), else the
    portal's default (settings.LANGUAGE_CODE). Never the language of whoever caused it: a
    requester in a Spanish session sent Spanish e-mails to deciders who had chosen none.
    (Organizations hold no default language of their own; one would come between the two.)"""
    return language_supported(getattr(user, "language", "")) or settings.LANGUAGE_CODE


def language_remember(*, user: User, code: str) -> bool:
    """Keep ``code`` as ``user``'s language; False if it is not one of the portal's."""
    code = language_supported(code)
    if not code:
        return False
    if user.language != code:
        User.objects.filter(pk=user.pk).update(language=code)
        user.language = code
    return True


def language_activate(*, request: HttpRequest, code: str | None) -> None:
    """The rest of this request (its page, the messages it leaves for the next page) in ``code``,
    if the portal has it; nothing otherwise."""
    code = language_supported(code)
    if code:
        translation.activate(code)
        request.LANGUAGE_CODE = code


def language_at_sign_in(*, user: User, request: HttpRequest) -> None:
    """A language chosen with the switcher on the sign-in pages (this browser, before this
    sign-in) becomes the account's. The account's own language, if it has one, applies from the
    sign-in on (``UserLanguageMiddleware`` from the next page; this request's too, so that what it
    says on the next page, allauth's "Successfully signed in as", is in it: made in the browser's
    language, it was English above a Spanish page, found by QA); an account without one follows
    the browser. Only a choice is kept: the language a browser happened to ask for is not."""
    chosen = request.session.pop(LANGUAGE_CHOSEN, "") if hasattr(request, "session") else ""
    language_remember(user=user, code=chosen)
    language_activate(request=request, code=user.language)


def language_of_invitation(*, invitation: Invitation, request: HttpRequest) -> str:
    """The language of an invitation link's pages (``views.invitation_accept``): the invitation's
    (the one its e-mail is written in), unless the person has one of their own: the signed-in
    account's, or one chosen with the switcher on this browser (waiting in the session for the
    account, ``language_at_sign_in``). Found by QA: a Spanish invitation opened on an English
    browser was English."""
    user = getattr(request, "user", None)
    own = language_supported(user.language) if user is not None and user.is_authenticated else ""
    chosen = request.session.get(LANGUAGE_CHOSEN, "") if hasattr(request, "session") else ""
    return own or language_supported(chosen) or language_supported(invitation.language)


#: the session key naming the invitation link whose sign-in page this browser was sent to
#: (``invitation_sign_in_remember``): {"next_hash": a keyed hash of the link's path, "language":
#: the invitation's}. Never the path itself: it holds the invitation's raw token, which the
#: database keeps only hashed (``Invitation.token_hash``), and the sessions table is a table too.
INVITATION_SIGN_IN = "lightbox_invitation_sign_in"


def _sign_in_next_hash(path: str) -> str:
    return salted_hmac("lightbox.invitation_sign_in.next", path, algorithm="sha256").hexdigest()


def invitation_sign_in_remember(*, invitation: Invitation, request: HttpRequest) -> None:
    """This browser is sent to sign in before accepting ``invitation`` (an account exists for its
    address), and back to the invitation's link (``request.path``) after: the sign-in page is in
    the invitation's language (``language_of_sign_in``), as the link's pages are. The session
    keeps a hash of the link's path, not the path (it holds the raw token)."""
    request.session[INVITATION_SIGN_IN] = {"next_hash": _sign_in_next_hash(request.path),
                                           "language": invitation.language}


def language_of_sign_in(*, request: HttpRequest) -> str:
    """The language of the sign-in page (GET, and its POST shown again after a wrong password),
    when an invitation's link sent this browser there (its ``next`` is that link,
    ``invitation_sign_in_remember``): as the link's pages (``language_of_invitation``), one chosen
    with the switcher on this browser, else the invitation's. "" for any other sign-in, which
    follows the browser. Found by QA: a Spanish invitation led to an English sign-in page."""
    if not hasattr(request, "session"):
        return ""
    sent = request.session.get(INVITATION_SIGN_IN)
    back_to = request.POST.get("next") if request.method == "POST" else request.GET.get("next")
    if (not isinstance(sent, dict) or not back_to or not isinstance(sent.get("next_hash"), str)
            or not constant_time_compare(_sign_in_next_hash(back_to), sent["next_hash"])):
        return ""
    return language_supported(request.session.get(LANGUAGE_CHOSEN, "")) or language_supported(sent.get("language"))


# --- creating --------------------------------------------------------------------------------

def invitation_check_rights(*, by: User, organization: Organization, role: str, cases: Iterable[Case],
                            request: HttpRequest | None = None) -> None:
    """Staff roles (and invitations naming no case) need MANAGE_MEMBERS; an external consultant
    invited to cases needs SHARE_CASE on each of them (an invitation is a share of access)."""
    cases = list(cases)
    if role == Role.PATIENT:
        raise ValidationError(_("Patients are invited from their case."))
    if role != Role.EXTERNAL_CONSULTANT or not cases:
        policy.require(by, Action.MANAGE_MEMBERS, organization, request=request)
    for case in cases:
        if case.organization_id != organization.pk:
            raise PermissionDenied
        policy.require(by, Action.SHARE_CASE, case, request=request)


def invitation_check_patient_rights(*, by: User, organization: Organization, patient: Any, case: Case,
                                    request: HttpRequest | None = None) -> None:
    """A patient is invited from one of their cases (``case``, of ``patient``, both of
    ``organization``): the inviter needs SHARE_CASE on it (``policy.require``, the denial recorded)."""
    if patient.organization_id != organization.pk or case.patient_id != patient.pk:
        raise PermissionDenied
    policy.require(by, Action.SHARE_CASE, case, request=request)


#: a patient with no date of birth recorded (the invitation is checked with it): refused
#: (``invitation_create``), said on the form's page before anything is typed, with the way to
#: correct the patient's details (``views.patient_invite``)
PATIENT_BIRTH_DATE_MISSING = gettext_noop("The patient's date of birth is not recorded; it is needed to check "
                                          "the invitation.")
#: a patient invited from a closed case: refused (``invitation_create``), said on the form's page
#: before anything is typed (``views.patient_invite``)
PATIENT_CASE_CLOSED = gettext_noop("This case is closed, so its patient cannot be invited from it. Reopen the case "
                                   "first, or invite the patient from one of their open cases.")


def invitation_create(*, organization: Organization, by: User, email: str, role: str,
                      cases: Iterable[Case] = (), patient: Any = None, case: Case | None = None,
                      language: str = "", request: HttpRequest | None = None) -> tuple[Invitation, str]:
    """Invite ``email`` to ``organization`` with ``role``; returns (invitation, raw token).

    A patient (``patient``) is invited from one of their open cases (``case``, recorded on the
    invitation: sending it again asks it again): the inviter needs SHARE_CASE on it
    (``policy.require``, the denial recorded), and a closed case is refused (``ValidationError``,
    code ``case_closed``); staff and consultant invitations need the rights of
    ``invitation_check_rights``. Nothing is made when refused.

    The raw token (256 random bits) is returned once, for the e-mail; only its sha256 is stored.
    The invitation expires after the organization's ``invitation_ttl_hours`` and works once.
    ``language`` is the e-mail's and the new account's (the inviter's current one if not given)."""
    cases = list(cases)
    if language and not language_supported(language):
        raise ValidationError(_("Unknown language."))
    language = language_supported(language) or language_of(None)
    email = (email or "").strip().lower()
    kind = InvitationKind.PATIENT if patient is not None else InvitationKind.MEMBER
    if kind == InvitationKind.PATIENT:
        role = Role.PATIENT
        if case is None:
            raise TypeError("a patient is invited from one of their cases: pass case=")
        invitation_check_patient_rights(by=by, organization=organization, patient=patient, case=case,
                                        request=request)
        if not case.is_open:
            raise ValidationError(_(PATIENT_CASE_CLOSED), code="case_closed")
        if patient.birth_date is None:
            raise ValidationError(_(PATIENT_BIRTH_DATE_MISSING), code="birth_date_missing")
    else:
        invitation_check_rights(by=by, organization=organization, role=role, cases=cases, request=request)
        if role not in Role.values:
            raise ValidationError(_("Unknown role."))
    raw = secrets.token_urlsafe(32)
    with transaction.atomic():
        _invitation_refuse_pending(organization=organization, by=by, email=email, kind=kind, patient=patient)
        invitation = _invitation_insert(organization=organization, kind=kind, email=email, role=role,
                                        patient=patient, case=case if kind == InvitationKind.PATIENT else None,
                                        raw=raw, by=by, cases=cases, language=language, request=request)
    # Sent once the row exists (the send is claimed on sent_at, so a retry never sends twice).
    try:
        invitation_send(invitation=invitation, raw=raw, request=request)
    except (smtplib.SMTPException, OSError) as exc:
        _invitation_not_sent(invitation=invitation, error=exc, by=by, request=request)
    return invitation, raw


def _invitation_refuse_pending(*, organization: Organization, by: User, email: str, kind: str,
                               patient: Any, exclude: Invitation | None = None) -> None:
    """One pending invitation of a kind per address in an organization (and, for a patient, per
    patient: a guardian's address may be invited for each child): sending the form again (or
    twice) made a second one, with a second e-mail and a second working link. Refused, saying
    until when the one sent works; it may be withdrawn to send a new one.

    Only those whom the refusal may name block: for an inviter who manages members (who sees and
    may withdraw every invitation on the invitations page), any such invitation; for another
    inviter (a clinician inviting a consultant to their case, or a patient), their own only.
    Another's invitation is neither named nor in the way: the refusal would tell them of an
    invitation they may not see (a patient's, say) and ask them to withdraw what they may not.
    The organization's row is locked first (in the caller's transaction), so that two sends at
    once do not both find none. ``exclude``: the invitation being sent again, not in its own way."""
    Organization.objects.select_for_update(no_key=True).filter(pk=organization.pk).values_list("pk").first()
    blocking = Invitation.objects.for_org(organization.pk).pending().filter(email=email, kind=kind)
    if exclude is not None:
        blocking = blocking.exclude(pk=exclude.pk)
    if kind == InvitationKind.PATIENT:
        blocking = blocking.filter(patient=patient)
    manages = policy.can(by, Action.MANAGE_MEMBERS, organization)
    if not manages:
        blocking = blocking.filter(created_by=by)
    pending = blocking.order_by("-expires_at").first()
    if pending is None:
        return
    expires = formats.date_format(timezone.localtime(pending.expires_at), "SHORT_DATETIME_FORMAT")
    if manages:
        raise ValidationError(_("An invitation to %(email)s is already waiting to be accepted; it works until "
                                "%(expires)s. To send a new one, withdraw it first on the invitations page.")
                              % {"email": email, "expires": expires}, code="pending")
    raise ValidationError(_("You already invited %(email)s; your invitation is waiting to be accepted and works "
                            "until %(expires)s. To send a new one, withdraw yours first on the invitations page.")
                          % {"email": email, "expires": expires}, code="pending")


def _invitation_not_sent(*, invitation: Invitation, error: Exception, by: User,
                         request: HttpRequest | None) -> None:
    """The mail server was unreachable or refused the address. Nobody received the link and its
    secret is not kept, so the invitation is withdrawn (recorded) and the sender told why; the
    log names the error's type only (its message quotes the address)."""
    logger.warning("Invitation e-mail not sent: %s", type(error).__name__)
    with transaction.atomic():
        Invitation.objects.filter(pk=invitation.pk).update(sent_at=None, revoked_at=timezone.now())
        record(action="invitation.revoked", actor=by, organization_id=invitation.organization_id,
               target=invitation, request=request, outcome="failed",
               details={"reason": "not_sent", "error": type(error).__name__})
    raise ValidationError(_("The invitation e-mail could not be sent (the mail server could not be reached or "
                            "refused the address), so the invitation was withdrawn. Check the address and try "
                            "again later."))


def _invitation_insert(*, organization: Organization, kind: str, email: str, role: str, patient: Any,
                       case: Case | None, raw: str, by: User, cases: list, language: str,
                       request: HttpRequest | None) -> Invitation:
    invitation = Invitation.objects.create(
        organization=organization, kind=kind, email=email, role=role, patient=patient, case=case,
        language=language, token_hash=hash_token(raw), created_by=by,
        expires_at=timezone.now() + timedelta(hours=organization.invitation_ttl_hours))
    if cases:
        invitation.cases.set(cases)
    record(action="invitation.created", actor=by, organization=organization, target=invitation,
           request=request, details={"role": role, "kind": kind, "cases": [str(c.public_id) for c in cases],
                                     "expires_at": invitation.expires_at.isoformat()})
    return invitation


def invitation_send(*, invitation: Invitation, raw: str, request: HttpRequest | None = None) -> bool:
    """Send the invitation e-mail once (claimed with a conditional UPDATE). The mail holds the
    organization's name, the inviter's name, the expiry and the link: no patient name, identifier,
    study description or image."""
    if not Invitation.objects.filter(pk=invitation.pk, sent_at__isnull=True).update(sent_at=timezone.now()):
        return False
    _invitation_mail(invitation=invitation, raw=raw, request=request)
    return True


def templated_email(name: str, context: dict[str, Any], *, to: str, language: str) -> EmailMultiAlternatives:
    """The e-mail made by ``templates/accounts/email/<name>_subject.txt``, ``_message.txt`` and
    ``_message.html`` from ``context``, in ``language``, to ``to`` (an invitation, a single sign-on
    link): the caller sends it."""
    with translation.override(language):
        subject = render_to_string(f"accounts/email/{name}_subject.txt", context).strip()
        text = render_to_string(f"accounts/email/{name}_message.txt", context)
        html = render_to_string(f"accounts/email/{name}_message.html", context)
    message = EmailMultiAlternatives(subject=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + subject, body=text, to=[to])
    message.attach_alternative(html, "text/html")
    return message

def _invitation_mail(*, invitation: Invitation, raw: str, request: HttpRequest | None) -> None:
    """The invitation e-mail, in the invitation's language, its send claimed by the caller."""
    context = {"invitation": invitation, "organization": invitation.organization,
               "inviter": invitation.created_by.display_name if invitation.created_by else "",
               "url": invitation_url(raw, request), "patient": invitation.kind == InvitationKind.PATIENT,
               "case_count": invitation.cases.count(),
               # said only where the role will be asked for one (found by QA: a radiologist was told
               # to set up an authenticator app that nothing then asked for)
               "second_factor": invitation.role in (invitation.organization.mfa_required_roles or [])}
    templated_email("invitation", context, to=invitation.email,
                    language=language_supported(invitation.language) or language_of(None)).send()


def invitation_require_manage(*, invitation: Invitation, by: User, request: HttpRequest | None = None) -> None:
    """Who may withdraw an invitation or send it again: its inviter, or whoever manages the
    organization's members (``policy.require``: PermissionDenied, the denial recorded)."""
    if invitation.created_by_id != by.pk:
        policy.require(by, Action.MANAGE_MEMBERS, invitation.organization, request=request)


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, by: User, request: HttpRequest | None = None) -> bool:
    """The inviter, or an org admin, withdraws a pending invitation."""
    invitation_require_manage(invitation=invitation, by=by, request=request)
    done = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True) \
        .update(revoked_at=timezone.now())
    if done:
        record(action="invitation.revoked", actor=by, organization_id=invitation.organization_id,
               target=invitation, request=request)
    return bool(done)


def invitation_resend(*, invitation: Invitation, by: User, request: HttpRequest | None = None) -> str:
    """Send a pending (or expired) invitation's e-mail again, for an invitee who lost it or let
    it expire; returns the new raw token.

    Who may: as for withdrawing it (``invitation_require_manage``); a sender who does not manage
    members must also still be allowed to give the access it gives, as when it was made
    (``_invitation_resend_check_rights``: a patient's inviter who may no longer share the patient's
    case was sending it again), and a patient invitation's case (the one it was sent from) must
    still be open, whoever sends it. An accepted, withdrawn or locked invitation is refused
    (``ValidationError``), as is a second e-mail within ``INVITATION_RESEND_INTERVAL`` of the last
    one, or an expired invitation to an address another invitation now waits for.

    A new token and a new expiry (the organization's ``invitation_ttl_hours`` from now) replace the
    old ones in one conditional UPDATE, which also claims the send (``sent_at``): the old link stops
    working at once, and of two resends at once only one passes. The old token's digest is kept
    (``SupersededInvitationToken``): its link then says that a newer e-mail was sent
    (``Refusal.SUPERSEDED``). The e-mail is the invitation's own (no patient data). If the mail
    server fails, the invitation is put back as it was (``_invitation_resend_not_sent``: the
    earlier link works again, until its own expiry) and the sender told (``ValidationError``); a
    transient failure does not withdraw a working invitation."""
    invitation_require_manage(invitation=invitation, by=by, request=request)
    organization = invitation.organization
    _invitation_resend_check_rights(invitation=invitation, by=by, request=request)
    raw = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        _invitation_refuse_pending(organization=organization, by=by, email=invitation.email, kind=invitation.kind,
                                   patient=invitation.patient, exclude=invitation)
        previous = Invitation.objects.filter(pk=invitation.pk).values("token_hash", "expires_at", "sent_at").get()
        claimed = Invitation.objects.filter(pk=invitation.pk, token_hash=previous["token_hash"],
                                            accepted_at__isnull=True, revoked_at__isnull=True,
                                            locked_at__isnull=True) \
            .filter(Q(sent_at__isnull=True) | Q(sent_at__lte=now - INVITATION_RESEND_INTERVAL)) \
            .update(token_hash=hash_token(raw), sent_at=now,
                    expires_at=now + timedelta(hours=organization.invitation_ttl_hours))
        invitation.refresh_from_db()
        if not claimed:
            raise ValidationError(_invitation_resend_refusal(invitation), code="not_resent")
        # the earlier e-mail's link then says that a newer one was sent (``invitation_lookup``)
        SupersededInvitationToken.objects.bulk_create(
            [SupersededInvitationToken(invitation=invitation, token_hash=previous["token_hash"], superseded_at=now)],
            ignore_conflicts=True)  # a digest is kept once (its column is unique)
        record(action="invitation.resent", actor=by, organization=organization, target=invitation,
               request=request, details={"expires_at": invitation.expires_at.isoformat()})
    try:
        _invitation_mail(invitation=invitation, raw=raw, request=request)
    except (smtplib.SMTPException, OSError) as exc:
        _invitation_resend_not_sent(invitation=invitation, raw=raw, previous=previous, error=exc, by=by,
                                    request=request)
    return raw


def _invitation_resend_check_rights(*, invitation: Invitation, by: User, request: HttpRequest | None) -> None:
    """A sender sends an invitation again only while it could still be made, on the checks
    ``invitation_create`` makes. A patient invitation's case (``Invitation.case``, the one it was
    sent from) must still be open, whoever sends it (``ValidationError``, code ``case_closed``).
    A sender who does not manage the organization's members must also still be allowed to give
    its access: a member invitation's ``invitation_check_rights`` (on the open cases it names); a
    patient invitation's ``invitation_check_patient_rights`` on that same case (``PermissionDenied``,
    the denial recorded), not on any other case of the patient. A patient invitation that records
    no case (made before it was recorded, or its case deleted) is not sent again, by anyone
    (``ValidationError``, code ``no_case``): its acceptance is refused
    (``_invitation_refusal_now``), so its new link would not work."""
    organization = invitation.organization
    patient_kind = invitation.kind == InvitationKind.PATIENT
    case = invitation.case if patient_kind else None
    if patient_kind and (case is None or invitation.patient is None):
        raise ValidationError(_("This invitation does not record the case it was sent from, so it cannot be "
                                "sent again. Withdraw it and invite the patient again from one of their open "
                                "cases."), code="no_case")
    if case is not None and not case.is_open:
        raise ValidationError(_("The case this invitation was sent from is closed, so it was not sent again. You "
                                "may still withdraw it."), code="case_closed")
    if policy.can(by, Action.MANAGE_MEMBERS, organization):
        return
    if not patient_kind:
        invitation_check_rights(by=by, organization=organization, role=invitation.role,
                                cases=invitation.cases.open(), request=request)
        return
    invitation_check_patient_rights(by=by, organization=organization, patient=invitation.patient, case=case,
                                    request=request)


def _invitation_resend_not_sent(*, invitation: Invitation, raw: str, previous: dict, error: Exception, by: User,
                                request: HttpRequest | None) -> None:
    """The e-mail sent again did not leave (the mail server unreachable, the address refused):
    nobody holds the new link, so the invitation's earlier token, expiry and send time are put
    back (a conditional UPDATE on the new token: a later resend's is not undone), and the earlier
    link works again until its own expiry. Recorded (``invitation.resent``, failed); the sender is
    told (``ValidationError``). The log names the error's type only (its message quotes the address)."""
    logger.warning("Invitation e-mail not sent again: %s", type(error).__name__)
    with transaction.atomic():
        restored = bool(Invitation.objects.filter(pk=invitation.pk, token_hash=hash_token(raw)).update(**previous))
        if restored:  # the earlier link works again: no longer a superseded one
            SupersededInvitationToken.objects.filter(invitation=invitation,
                                                     token_hash=previous["token_hash"]).delete()
        record(action="invitation.resent", actor=by, organization_id=invitation.organization_id, target=invitation,
               request=request, outcome="failed",
               details={"reason": "not_sent", "error": type(error).__name__, "restored": restored})
    invitation.refresh_from_db()
    if restored and Invitation.objects.pending().filter(pk=invitation.pk).exists():
        expires = formats.date_format(timezone.localtime(invitation.expires_at), "SHORT_DATETIME_FORMAT")
        raise ValidationError(_("The invitation e-mail could not be sent again (the mail server could not be "
                                "reached or refused the address). The invitation is unchanged: the link in the "
                                "earlier e-mail still works until %(expires)s. Try again later.")
                              % {"expires": expires}, code="not_sent")
    raise ValidationError(_("The invitation e-mail could not be sent again (the mail server could not be reached "
                            "or refused the address). The invitation is unchanged. Try again later."),
                          code="not_sent")


def invitations_withdraw_unsupported(*, senders: Iterable[User | int], case_ids: Iterable[int] | None = None,
                                     organization_id: int | None = None, by: User | None, reason: str,
                                     request: HttpRequest | None = None) -> int:
    """Withdraw the pending member invitations that ``senders`` (users or their ids) sent (those naming one of
    ``case_ids``, or all of theirs in ``organization_id``) and could no longer send: their inviter
    does not manage the members and may share none of the cases it names (``policy.can_in_absence``,
    as accepting it would decide, ``invitation_accept``). Called once access was taken from them
    (a share of theirs revoked, their membership ended), so that an invitation does not outlive
    the access it came from; one that still gives a case stays, the others' cases refused when it
    is accepted. Each withdrawal is recorded (``invitation.revoked``, ``reason``). Returns how many."""
    pending = Invitation.objects.pending().filter(kind=InvitationKind.MEMBER, created_by__in=list(senders))
    if case_ids is not None:
        pending = pending.filter(cases__in=list(case_ids))
    if organization_id is not None:
        pending = pending.filter(organization_id=organization_id)
    withdrawn = 0
    for invitation in pending.distinct().select_related("organization", "created_by").prefetch_related("cases"):
        inviter = invitation.created_by
        if _inviter_manages(invitation) or (invitation.role == Role.EXTERNAL_CONSULTANT and any(
                policy.can_in_absence(inviter, Action.SHARE_CASE, case) for case in invitation.cases.all())):
            continue
        if Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True) \
                .update(revoked_at=timezone.now()):
            withdrawn += 1
            record(action="invitation.revoked", actor=by, organization_id=invitation.organization_id,
                   target=invitation, request=request, details={"reason": reason, "inviter_access_ended": True})
    return withdrawn


def invitations_to_member_withdraw(*, organization: Organization, user: User, by: User | None,
                                   request: HttpRequest | None = None) -> int:
    """A member leaves ``organization`` (deactivated): the pending invitations there to their
    address are withdrawn (recorded, reason ``membership_ended``). One left in their mailbox
    would otherwise be theirs to accept, and accepting one from someone who does not manage the
    members is refused anyway (``_invitation_refusal_now``). Returns how many."""
    now = timezone.now()
    withdrawn = 0
    for invitation in Invitation.objects.for_org(organization.pk).pending(now).filter(email=user.email.lower()):
        if Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True) \
                .update(revoked_at=now):
            withdrawn += 1
            record(action="invitation.revoked", actor=by, organization_id=organization.pk, target=invitation,
                   request=request, details={"reason": "membership_ended"})
    return withdrawn


def _invitation_resend_refusal(invitation: Invitation) -> str:
    if invitation.accepted_at is not None:
        return _("This invitation was already accepted; it cannot be sent again.")
    if invitation.revoked_at is not None:
        return _("This invitation was withdrawn; it cannot be sent again. Send a new invitation instead.")
    if invitation.locked_at is not None:
        return _("This invitation is locked after too many wrong dates of birth; it cannot be sent again. "
                 "Withdraw it and send a new invitation.")
    return _("This invitation was sent less than a minute ago. Wait a minute before sending it again.")


# --- opening and accepting -------------------------------------------------------------------

class Refusal:
    UNKNOWN = "unknown"      # no such token (mistyped, tampered)
    SUPERSEDED = "superseded"  # an earlier token of an invitation sent again since (a newer e-mail)
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"
    LOCKED = "locked"        # too many wrong birth dates
    INVITER_RIGHTS = "inviter_rights"       # its inviter may no longer give what it gives
    MEMBERSHIP_ENDED = "membership_ended"   # the invitee's membership there was ended
    CASE_CLOSED = "case_closed"             # a patient invitation's case was closed (or deleted) since


def invitation_lookup(raw: str) -> tuple[Invitation | None, str | None]:
    """The invitation behind a raw token and why it cannot be used (None: it can). The link of an
    e-mail that "Send again" replaced (``SupersededInvitationToken``) is ``SUPERSEDED``, whatever
    became of the invitation since: it never works again, and its page sends to the newest e-mail."""
    if not raw or len(raw) > 100:
        return None, Refusal.UNKNOWN
    digest = hash_token(raw)
    invitation = (Invitation.objects.select_related("organization", "patient", "created_by", "case")
                  .filter(token_hash=digest).first())
    if invitation is None:
        superseded = (Invitation.objects.select_related("organization", "patient", "created_by")
                      .filter(superseded_tokens__token_hash=digest).first())
        if superseded is not None:
            return superseded, Refusal.SUPERSEDED
        return None, Refusal.UNKNOWN
    if invitation.accepted_at is not None:
        return invitation, Refusal.USED
    if invitation.revoked_at is not None:
        return invitation, Refusal.REVOKED
    if invitation.locked_at is not None:
        return invitation, Refusal.LOCKED
    if invitation.expires_at <= timezone.now():
        return invitation, Refusal.EXPIRED
    return invitation, _invitation_refusal_now(invitation)


def _inviter_manages(invitation: Invitation) -> bool:
    """Whether the invitation's inviter still manages the organization's members (an account
    deleted since does not)."""
    return policy.can_in_absence(invitation.created_by, Action.MANAGE_MEMBERS, invitation.organization)


def _invitation_refusal_now(invitation: Invitation, *, manages: bool | None = None,
                            membership: Membership | None = None) -> str | None:
    """Why a pending invitation cannot be accepted now, though its link works (None: it can).

    - ``CASE_CLOSED``: a patient invitation whose case (``Invitation.case``, the one it was sent
      from) was closed since, or that records none (deleted since, or made before invitations
      recorded it: nothing to ask of), whoever sent it. A patient is invited from an open case
      (``invitation_create``): one closed after the e-mail left gave portal access all the same.
    - ``INVITER_RIGHTS``: a member invitation that only someone who manages the members could
      send (a staff role, or naming no case: ``invitation_check_rights``) whose inviter no longer
      does (their role changed, their membership or account was ended). A consultant invitation
      naming cases is accepted, each case checked on its own (``invitation_accept``). Or a
      patient invitation whose inviter, who does not manage the members, may no longer share its
      case (``policy.can_in_absence``: their share of it revoked, their membership or account
      ended), as sending it again asks (``invitation_check_patient_rights``).
    - ``MEMBERSHIP_ENDED``: the invited address's membership in the organization was ended, and
      the inviter does not manage the members: only they take a member back. A departing member
      reactivated themselves with an invitation still in their mailbox.

    ``manages`` (``_inviter_manages``) and ``membership`` (the invitee's, locked) when read already."""
    patient_kind = invitation.kind == InvitationKind.PATIENT
    if patient_kind and (invitation.case is None or not invitation.case.is_open):
        return Refusal.CASE_CLOSED
    manages = _inviter_manages(invitation) if manages is None else manages
    if manages:
        return None
    if patient_kind and not policy.can_in_absence(invitation.created_by, Action.SHARE_CASE, invitation.case):
        return Refusal.INVITER_RIGHTS
    if invitation.kind == InvitationKind.MEMBER and (
            invitation.role != Role.EXTERNAL_CONSULTANT or not invitation.cases.exists()):
        return Refusal.INVITER_RIGHTS
    if membership is None:
        membership = Membership.objects.filter(organization_id=invitation.organization_id,
                                               user__email=invitation.email.lower()).first()
    if membership is not None and not membership.is_active:
        return Refusal.MEMBERSHIP_ENDED
    return None


#: what ``invitation_accept`` refuses with (``ValidationError.code``), and why
INVITATION_REFUSALS = {
    Refusal.INVITER_RIGHTS: gettext_lazy(
        "The person who invited you can no longer give the access this invitation gives, so it cannot be used. "
        "Ask the organization's administrators for a new invitation if you still need access."),
    Refusal.MEMBERSHIP_ENDED: gettext_lazy(
        "Your membership in this organization was ended by its administrators, and this invitation cannot "
        "restore it. Ask one of its administrators if you should have access again."),
    Refusal.CASE_CLOSED: gettext_lazy(
        "The case this invitation was sent for has been closed or is no longer available, so the invitation no "
        "longer gives access to the patient portal. If you still need access, contact the care team that invited "
        "you and ask them for a new invitation."),
}


@dataclass(frozen=True)
class InvitationAccepted:
    """What accepting an invitation gave: the grants made, and how many of the open cases it
    names gave nothing because its inviter may no longer share them (``cases_not_given``)."""

    invitation: Invitation
    grants: list
    cases_not_given: int


def invitation_refused(*, invitation: Invitation | None, reason: str, request: HttpRequest | None) -> None:
    record(action="invitation.refused", outcome="denied", request=request,
           organization_id=invitation.organization_id if invitation else None, target=invitation,
           actor=getattr(request, "user", None), actor_label="" if invitation else "anonymous",
           details={"reason": reason})


@transaction.atomic
def invitation_check_birth_date(*, invitation: Invitation, value: date | None,
                                request: HttpRequest | None = None) -> bool:
    """A patient invitation asks for the patient's date of birth. Five wrong answers lock the
    invitation for good (a new one must be sent); each wrong answer is recorded."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)  # patient: a nullable join
    if invitation.locked_at is not None:
        return False
    if value is not None and invitation.patient is not None and value == invitation.patient.birth_date:
        return True
    invitation.failed_attempts += 1
    if invitation.failed_attempts >= Invitation.MAX_FAILED_ATTEMPTS:
        invitation.locked_at = timezone.now()
    invitation.save(update_fields=["failed_attempts", "locked_at"])
    record(action="invitation.birth_date_failed", outcome="denied", request=request, actor_label="anonymous",
           organization_id=invitation.organization_id, target=invitation,
           details={"attempts": invitation.failed_attempts, "locked": invitation.locked_at is not None})
    return False


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User,
                      request: HttpRequest | None = None) -> InvitationAccepted:
    """Bind the invitation to ``user`` (whose e-mail must be the invited one): membership with
    the invited role, and a Grant (source "invitation") for each case it opens. Single use: the
    claim is a conditional UPDATE, so a second acceptance fails.

    The access is its inviter's to give when it is accepted, not only when it was sent: an
    inviter who manages the members gives it all; any other gives a case only while they may
    still share it (``policy.can_in_absence``: their share of it revoked, their membership or
    account ended, and it gives nothing), the cases given nothing counted in the answer and in
    the audit event (their public ids). A membership ended in the organization is taken back only
    by an invitation from someone who manages the members (recorded as ``membership.updated``,
    before and after); refused otherwise, as is an invitation its inviter could no longer send,
    and a patient invitation whose case was closed or deleted since it was sent, its case read
    again here under its row's lock, so that a close at the same moment comes wholly before or
    after (``_invitation_refusal_now``: ``ValidationError`` with the ``Refusal`` as its code,
    nothing changed)."""
    if user.email.lower() != invitation.email.lower():
        raise PermissionDenied(_("This invitation was sent to another e-mail address."))
    now = timezone.now()
    claimed = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True,
                                        locked_at__isnull=True, expires_at__gt=now) \
        .update(accepted_at=now, accepted_by=user)
    if not claimed:
        raise ValidationError(_("This invitation can no longer be used."))
    invitation.refresh_from_db()
    if invitation.kind == InvitationKind.PATIENT and invitation.case_id is not None:
        # its case's row locked, as a share locks it (apps.sharing.services._case_open_locked), and
        # read as the database has it: a close in flight commits first (then seen closed here) or
        # waits for this acceptance; read plainly, one not committed yet was seen open, and the
        # acceptance went through for a case closed at the same moment (found by a reviewer)
        from apps.cases.models import Case

        invitation.case = Case.objects.select_for_update(no_key=True).filter(pk=invitation.case_id).first()
    manages = _inviter_manages(invitation)
    membership = Membership.objects.select_for_update().filter(user=user,
                                                               organization=invitation.organization).first()
    refusal = _invitation_refusal_now(invitation, manages=manages, membership=membership)
    if refusal is not None:  # raised in the transaction: the claim is undone, nothing changed
        raise ValidationError(INVITATION_REFUSALS[refusal], code=refusal)
    if not user.language:  # the invitation's pages were in its language: the next ones too, as for
        language_remember(user=user, code=invitation.language)  # an account made by it (found by QA)
    made = False
    if membership is None:  # (get_or_create: another invitation to them accepted at the same time)
        membership, made = Membership.objects.get_or_create(
            user=user, organization=invitation.organization, defaults={"role": invitation.role})
    elif not membership.is_active:  # taken back by someone who manages the members
        before = {"role": membership.role, "is_active": False}
        membership.is_active = True
        membership.role = invitation.role
        membership.deactivated_at = None  # active again: no longer a former member (membership_update)
        membership.save(update_fields=["is_active", "role", "deactivated_at"])
        record(action="membership.updated", actor=user, organization_id=invitation.organization_id,
               target=membership, request=request,
               details={"before": before, "after": {"role": membership.role, "is_active": True},
                        "via": "invitation", "invitation": str(invitation.public_id),
                        "invited_by": str(invitation.created_by.public_id)})
    from apps.sharing.services import grant_create
    from apps.sharing.usecases import template_for

    # The grants follow the organization's "external consultant" sharing template: its
    # permissions, renditions, lifetime (renewable by the sharer) and its MFA requirement.
    template = template_for(invitation.organization_id, INVITATION_USE_CASE)
    grants, not_given = [], []
    for case in invitation.cases.all():
        if not case.is_open:
            continue
        if not (manages or policy.can_in_absence(invitation.created_by, Action.SHARE_CASE, case)):
            not_given.append(str(case.public_id))  # no longer theirs to share: nothing given
            continue
        grants.append(grant_create(case=case, grantee=user, permissions=template.permissions,
                                   renditions=template.renditions, use_case=template.key,
                                   mfa_required=template.mfa_required,
                                   expires_at=now + timedelta(hours=template.default_hours),
                                   by=invitation.created_by, source="invitation", request=request))
    record(action="invitation.accepted", actor=user, organization_id=invitation.organization_id,
           target=invitation, request=request,
           details={"role": invitation.role, "grants": [str(g.public_id) for g in grants],
                    "membership_created": made, "cases_not_given": not_given})
    return InvitationAccepted(invitation=invitation, grants=grants, cases_not_given=len(not_given))


#: the code of the refusal ``account_create_for_invitation`` raises for an address with an account
ACCOUNT_EXISTS = "account_exists"


@transaction.atomic
def account_create_for_invitation(*, invitation: Invitation, full_name: str, password: str,
                                  request: HttpRequest | None = None) -> User:
    """The account of the invited address. When one exists already, ``ValidationError`` (code
    ``ACCOUNT_EXISTS``), nothing written: the person signs in to accept. So too when it was made a
    moment ago by another submit of the same form (a double click): both checks found none, and
    the database's unique address refuses the later insert (an IntegrityError, a server error
    before: found by a reviewer)."""
    from django.db import IntegrityError

    exists = ValidationError(_("An account with this e-mail address exists; sign in to accept."),
                             code=ACCOUNT_EXISTS)
    if User.objects.filter(email=invitation.email.lower()).exists():
        raise exists
    try:
        with transaction.atomic():  # a savepoint: the refused insert leaves the transaction usable
            user = User.objects.create_user(email=invitation.email, password=password,
                                            full_name=full_name.strip(),
                                            language=language_supported(invitation.language))
    except IntegrityError:  # the address is the one unique value given (public_id is a random UUID)
        raise exists from None
    record(action="account.created", actor=user, organization_id=invitation.organization_id, target=user,
           request=request, details={"via": "invitation"})
    return user


# --- sessions --------------------------------------------------------------------------------

def user_sessions_end(*, user: User, reason: str, by: User | None = None,
                      request: HttpRequest | None = None, operator: bool = False) -> None:
    """End every session of ``user`` at once: the session auth hash includes the security stamp,
    so a new stamp makes every existing session invalid on its next request. ``by``: who did it
    (the user when None), or ``operator``: a management command."""
    User.objects.filter(pk=user.pk).update(security_stamp=new_security_stamp())
    user.refresh_from_db(fields=["security_stamp"])
    record(action="auth.sessions_ended", actor=None if operator else by or user,
           actor_label="system" if operator else "", target=user, request=request, details={"reason": reason})


@transaction.atomic
def mfa_reset(*, user: User, by: User | None, request: HttpRequest | None = None) -> None:
    """Remove the user's authenticator and recovery codes and end all their sessions; they
    enrol again at their next sign-in. ``by``: the user themselves, or an org admin of every
    organization the user is a member of (``policy.second_factor_reset_allowed``); None: the
    operator (``manage.py mfa_reset``), for a person of several organizations."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if by is not None and not policy.second_factor_reset_allowed(by, user):
        raise PermissionDenied
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    if by is None:
        record(action="auth.mfa_reset", actor_label="system", target=user, details={"via": "manage.py mfa_reset"})
    else:
        record(action="auth.mfa_reset", actor=by, target=user, request=request)
    user_sessions_end(user=user, reason="mfa_reset", by=by, request=request, operator=by is None)


# --- SSO ----------------------------------------------------------------------------------------

#: e-mail services anyone may have an address at: no organization's single sign-on takes them
PUBLIC_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
    "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "pm.me",
    "mail.com", "zoho.com", "yandex.com", "yandex.ru", "mail.ru", "web.de", "t-online.de", "free.fr",
    "orange.fr", "laposte.net", "libero.it", "qq.com", "163.com", "126.com", "tutanota.com", "fastmail.com",
})
#: ... and the services of that kind under many countries' domains (gmx.de, gmx.net, yahoo.co.uk, hotmail.es)
PUBLIC_MAIL_NAMES = frozenset({"gmail", "gmx", "yahoo", "hotmail", "outlook", "live", "aol", "yandex",
                               "protonmail", "icloud"})


def public_mail_domain(domain: str) -> bool:
    """Whether ``domain`` is a public e-mail service's (gmail.com, gmx.de, yahoo.co.uk...)."""
    domain = domain.lower()
    if domain in PUBLIC_MAIL_DOMAINS:
        return True
    name, _dot, rest = domain.partition(".")
    labels = rest.split(".")
    return name in PUBLIC_MAIL_NAMES and (
        len(labels) == 1 or (len(labels) == 2 and labels[0] in {"co", "com", "ne", "or"}))


def _domains_without_staff(organization: Organization, domains: Iterable[str], *, by: User | None = None,
                           ) -> list[str]:
    """Those of ``domains`` at which no active staff member of ``organization`` has an address.
    An account the organization itself made (its membership the account's first) that has never
    signed in is left out, unless it is ``by``'s, who is signed in: any admin may add any address
    (``membership_add`` makes an account for one that has none), and such an account, which its
    owner may know nothing of, let that admin name another hospital's domain for its provider."""
    from apps.accounts.adapters import SSO_ROLES

    first = Membership.objects.filter(user=OuterRef("user")).order_by("pk").values("organization_id")[:1]
    staff = (Membership.objects.filter(organization=organization, is_active=True, user__is_active=True,
                                       role__in=SSO_ROLES)
             .annotate(first_organization=Subquery(first))
             .exclude(Q(user__last_login__isnull=True, first_organization=organization.pk)
                      & ~Q(user_id=getattr(by, "pk", None))))
    return [d for d in domains if not staff.filter(user__email__iendswith=f"@{d}").exists()]


def sso_issuer_refusal(issuer: str) -> str | None:
    """Why the portal may not fetch from ``issuer`` (None: it may). allauth reads
    ``<issuer>/.well-known/openid-configuration`` from the server, so an issuer is the address of
    a request the server makes: it must be https, at a host whose every address is public, not
    the server's own network (loopback, private, link-local: a cloud's metadata service) nor a
    name that does not resolve (it could be made to resolve there later).
    ``LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS`` (tests, development: a provider on 127.0.0.1) accepts a
    host on such a network, or unknown, over http too; a public host still needs https. The rule
    is ``outbound.refusal``'s, which every request of the sign-in passes again when it is made (a
    name may resolve elsewhere by then). Where a proxy applies to the issuer (``HTTPS_PROXY``,
    ``NO_PROXY``) the proxy resolves its name, so one that does not resolve here is not refused."""
    from apps.accounts import outbound

    dest = outbound.destination(issuer)
    reason = outbound.refusal(dest, proxied=outbound.proxy_for(issuer) is not None)
    if reason == "address":
        return _("Enter the provider's https:// address.")
    if reason == "not_found":
        return _("The provider's host name %(host)s could not be found.") % {"host": dest.host}
    if reason == "private":
        return _("The provider's address %(host)s is on a private or local network; the portal does not "
                 "connect there. Enter the provider's public https:// address.") % {"host": dest.host}
    if reason == "not_https":
        return _("The provider's address must begin with https://: its keys and tokens are fetched from it.")
    return None


@transaction.atomic
def sso_config_save(*, organization: Organization, by: User, issuer: str, client_id: str,
                    client_secret: str, allowed_domains: str, enabled: bool,
                    request: HttpRequest | None = None) -> SSOConfig:
    """Set the organization's OpenID Connect sign-in. An empty ``client_secret`` keeps the one
    stored (the form never shows it back). ``ValidationError`` by field (``issuer``,
    ``allowed_domains``) when refused.

    Security contract: the provider's issuer is an address the server fetches from, so it must
    be public and https (``sso_issuer_refusal``). An organization's single sign-on takes only
    e-mail domains at which its own active staff have addresses, never a public e-mail service's:
    an admin naming another hospital's domain claimed nothing, and another organization's claim
    never keeps an organization from naming the domain its own staff use. Several organizations
    may name one domain: "Sign in with your organization" sends an address only to the provider of
    an organization where it is active staff (``apps.accounts.sso.sso_config_for``), and a
    provider signs in only its organization's staff (``adapters.SocialAccountAdapter``), so no
    one's staff are sent to another organization's provider to type their hospital password there."""
    policy.require(by, Action.MANAGE_ORGANIZATION, organization, request=request)
    config = SSOConfig.objects.filter(organization=organization).first() or SSOConfig(organization=organization)
    config.issuer = issuer.strip().rstrip("/")
    config.client_id = client_id.strip()
    config.allowed_domains = allowed_domains
    config.enabled = enabled
    if client_secret:
        config.client_secret = client_secret
    if refusal := sso_issuer_refusal(config.issuer):
        raise ValidationError({"issuer": refusal})
    if not config.domains:
        raise ValidationError({"allowed_domains": _("Name at least one e-mail domain.")})
    if public := [d for d in config.domains if public_mail_domain(d)]:
        raise ValidationError({"allowed_domains": _(
            "%(domains)s: anyone can have an address at a public e-mail service. Single sign-on takes only "
            "your organization's own e-mail domains.") % {"domains": ", ".join(public)}})
    if unstaffed := _domains_without_staff(organization, config.domains, by=by):
        raise ValidationError({"allowed_domains": _(
            "No active staff member of this organization has signed in with an address at %(domains)s. "
            "Single sign-on takes only the domains of your staff's addresses: add the staff first, and have "
            "one of them sign in.")
            % {"domains": ", ".join(unstaffed)}})
    config.save()
    record(action="organization.sso_changed", actor=by, organization=organization, target=config,
           request=request, details={"enabled": enabled, "domains": config.domains,
                                     "secret_changed": bool(client_secret)})
    return config
