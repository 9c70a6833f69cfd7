"""Identity pages: second factor (enrol, verify, step-up, recovery codes), invitations (send,
accept), SSO (settings, start). Thin views: parse, call mfa/services, render."""

from __future__ import annotations

import logging
import math
from typing import Any
from uuid import UUID

import requests
import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_otp.plugins.otp_static.models import StaticDevice

from apps.accounts import brute_force, mfa, services, sso
from apps.accounts.forms import (
    AcceptForm,
    BirthDateForm,
    CodeForm,
    EnrolForm,
    InvitationForm,
    PatientInvitationForm,
    SSOConfigForm,
    SSOStartForm,
)
from apps.accounts.models import Invitation, InvitationKind, SSOConfig, User
from apps.accounts.services import Refusal
from apps.audit.services import record
from apps.core.pagination import page_of
from apps.core.redirects import next_url, with_next
from apps.organizations.selectors import active_organization_or_404
from apps.organizations.switching import switch_first
from apps.sharing import policy
from apps.sharing.policy import Action

logger = logging.getLogger(__name__)

#: invitations per page of the invitations page
INVITATIONS_PAGE_SIZE = 50


# --- idle sign-out ---------------------------------------------------------------------------

@login_required
@require_POST
def activity(request: HttpRequest) -> HttpResponse:
    """Someone is typing or pointing on an open page (sent by static/js/activity.js at most once
    a minute, only after such input): the access gate has counted this request as activity, so a
    long note is not lost to the idle sign-out. A session already past its limit was signed out
    by the gate before this view, and the page is told so by the redirect to the sign-in page."""
    return HttpResponse(status=204)


# --- e-mail address ---------------------------------------------------------------------------

def email_addresses_not_offered(request: HttpRequest) -> HttpResponse:
    """allauth's page to add e-mail addresses and make one primary is not offered (404): with no
    e-mail verification (accounts are made by admins and invitations), it let anyone signed in
    make any address not yet taken their account's own, and the portal knows people by their
    address (a share to a user, a group share's members, SSO, invitations). The address is the
    one the account was made with."""
    raise Http404


# --- language --------------------------------------------------------------------------------

def sign_in(request: HttpRequest) -> HttpResponse:
    """allauth's sign-in page (before allauth's view at its address), in the language of the
    invitation whose link sent this browser there, if one did (``services.language_of_sign_in``);
    otherwise allauth's page as it is."""
    from allauth.account.views import login

    services.language_activate(request=request, code=services.language_of_sign_in(request=request))
    return login(request)


def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switcher, remembered: a signed-in person's choice becomes their language
    (pages on every device, e-mails others' actions send them); a choice made before signing in
    waits in the session for the account that signs in next (``services.language_at_sign_in``)."""
    from django.conf import settings
    from django.views.i18n import set_language as switch

    response = switch(request)
    code = services.language_supported(request.POST.get("language")) if request.method == "POST" else ""
    if code and settings.LANGUAGE_COOKIE_NAME in response.cookies:
        if request.user.is_authenticated:
            services.language_remember(user=request.user, code=code)
        else:
            request.session[services.LANGUAGE_CHOSEN] = code
    return response


# --- second factor ---------------------------------------------------------------------------

@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app: QR code (drawn here, as SVG) and the key to type by hand. Not
    in a session an organization's single sign-on opened for a person who reaches another
    organization's data (``sso.session_outlived``): the provider's admin would enrol an
    authenticator of their choosing, which their provider then answers for at every sign-in. That
    session ends, and the person signs in with their password to enrol."""
    user = request.user
    if mfa.has_second_factor(user):
        if not user.is_verified():
            return redirect(with_next("accounts:mfa_verify", next_url(request)))
        return redirect(next_url(request))
    if sso.session_outlived(request, getattr(request, "my_memberships", None)):
        sso.session_end(request, during="enrolment")
        return redirect(with_next("account_login", next_url(request)))
    device = mfa.totp_pending(request)  # kept in the session until confirmed: a GET stores nothing
    form = EnrolForm(request.POST or None)
    locked = False
    if request.method == "POST" and form.is_valid():
        result, enrolled = mfa.totp_confirm(request, form.cleaned_data["code"])
        if result == mfa.OTPResult.OK:
            mfa.mark_verified(request, enrolled)
            mfa.recovery_codes_issue(user, request)
            # enrolled in a session an organization's single sign-on opened: no proof against it
            through = sso.opened_by(request)
            record(action="auth.mfa_enrolled", actor=user, request=request,
                   details={"through_sso_of": through} if through is not None else None)
            return redirect(with_next("accounts:recovery_codes", next_url(request)))
        if result == mfa.OTPResult.LOCKED:
            locked = True
            minutes = max(1, math.ceil((enrolled - timezone.now()).total_seconds() / 60))
            form.add_error(None, ngettext(
                "Too many wrong codes. Wait %(minutes)s minute, then enter the code your app shows at that moment.",
                "Too many wrong codes. Wait %(minutes)s minutes, then enter the code your app shows at that moment.",
                minutes) % {"minutes": minutes})
        else:
            form.add_error("code", _("That code does not match. Check the time on your phone and try the next code."))
    qr = segno.make(device.config_url, error="m")
    svg = qr.svg_inline(scale=4, dark="#111", light="#fff", title=_("QR code for your authenticator app"))
    key = mfa.manual_key(device)
    # sent here by a page that asks for a recent second factor (attaching a study, sharing): why
    step_up_for, step_up_why = mfa.step_up_reason(next_url(request))
    return render(request, "accounts/mfa_setup.html", {
        "form": form, "qr_svg": svg, "manual_key": key, "manual_key_grouped": " ".join(
            key[i:i + 4] for i in range(0, len(key), 4)), "next": next_url(request),
        "required": mfa.mfa_required(user), "step_up_for": step_up_for, "step_up_why": step_up_why},
        status=429 if locked else 400 if form.errors else 200)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """Recovery codes, shown once, to the session they were made in (``mfa.recovery_codes_to_show``),
    then saved: a reload shows them no more (a shared screen, someone looking over a shoulder),
    and says they were shown, to be saved or made anew (``recovery_codes_renew``, which replaces
    them)."""
    user = request.user
    if not mfa.has_second_factor(user):
        return redirect("accounts:mfa_setup")
    if not user.is_verified():
        # the page is open before the second factor (apps.accounts.middleware): a session with the
        # password alone would read codes not saved yet (or make new ones), confirm them and pass
        # the second factor with one
        return redirect(with_next("accounts:mfa_verify", request.get_full_path()))
    device = StaticDevice.objects.filter(user=user).first()
    if device is None:
        mfa.recovery_codes_issue(user, request)
        device = StaticDevice.objects.get(user=user)
    if request.method == "POST":
        if request.POST.get("saved") == "1":
            mfa.recovery_codes_confirm(user, request)
            messages.success(request, _("Your second factor is set up."))
            return _continue(request)
        messages.error(request, _("Tick the box to confirm you saved the recovery codes."))
    codes = mfa.recovery_codes_to_show(request, device)
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "next": next_url(request),
                                                            "confirmed": device.confirmed})


def _continue(request: HttpRequest) -> HttpResponse:
    """Where a second factor's check (the step-up, the end of an enrolment) goes on to: its
    ``next``; a download (``mfa.is_download``) by way of a page offering it (``continue_download``),
    a redirect still, so that reloading it sends no code again."""
    target = next_url(request)
    if mfa.is_download(target):
        return redirect(with_next("accounts:continue_download", target))
    return redirect(target)


@never_cache
@login_required
@require_safe
def continue_download(request: HttpRequest) -> HttpResponse:
    """A download after a second factor's check, offered on a page of its own with the way back
    to the page it belongs to: the browser saves a download and stays where it is, so redirected
    to it, the person stayed on the code's page as if nothing had happened. Anything else but a
    download (``mfa.is_download``) is redirected to; the download itself decides access."""
    target = next_url(request)
    if not mfa.is_download(target):
        return redirect(target)
    back = target.split("?", 1)[0]
    back = back.removesuffix("download/") if back.endswith("/download/") else None
    return render(request, "accounts/continue_download.html",
                  {"target": target, "label": mfa.download_label(target), "back": back,
                   "back_to_case": bool(back and back.startswith("/cases/"))})


def _verify(request: HttpRequest, *, purpose: str, template: str, extra: dict | None = None) -> HttpResponse:
    user = request.user
    if not mfa.has_second_factor(user):
        return redirect(with_next("accounts:mfa_setup", next_url(request)))
    form = CodeForm(request.POST or None)
    status = 200
    locked_until = None
    if request.method == "POST" and form.is_valid():
        result, locked_until = mfa.otp_check(request, user, form.cleaned_data["code"], purpose=purpose)
        if result == mfa.OTPResult.OK:
            return _continue(request)
        if result == mfa.OTPResult.LOCKED:
            status = 429
            form.add_error(None, _("Too many wrong codes. Your second factor is locked; try again after "
                                   "%(time)s (UTC), or ask your organization's admin.")
                           % {"time": locked_until.strftime("%H:%M")})
        elif result == mfa.OTPResult.REUSED:  # the current code, used already: refused all the same
            status = 400
            form.add_error("code", _("That code has just been used. Wait for the next code from your app and "
                                     "enter it."))
        else:
            status = 400
            form.add_error("code", _("That code is not right. Enter the current code from your app."))
    return render(request, template, {"form": form, "next": next_url(request), "locked_until": locked_until,
                                      **(extra or {})}, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_verify(request: HttpRequest) -> HttpResponse:
    """The sign-in step after the password, for anyone with an authenticator."""
    if request.user.is_verified():
        return redirect(next_url(request))
    # whom to ask when the phone and the recovery codes are both lost: the organization named (an
    # external consultant's "organization" is the hospital that invited them), or "" (the operator)
    return _verify(request, purpose="sign_in", template="accounts/mfa_verify.html",
                   extra={"reset_by": getattr(policy.second_factor_resetting_organization(request.user), "name", ""),
                          # set up through an organization's single sign-on: a code here confirms it
                          "sso_enrolled_by": mfa.sso_enrolled_to_confirm(request)})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def step_up(request: HttpRequest) -> HttpResponse:
    """Confirm with a fresh code before a sensitive act (sharing, invitations, recovery codes, a
    member's second-factor reset, deleting a study)."""
    if mfa.recently_verified(request) and request.method == "GET":
        return redirect(next_url(request))
    return _verify(request, purpose="step_up", template="accounts/step_up.html",
                   extra={"step_up_why": mfa.step_up_reason(next_url(request))[1]})


# --- invitations -------------------------------------------------------------------------------

def _invitation_cases(request: HttpRequest, org, *, facts=None):
    """The open cases of ``org`` an invitation from this user may open, as the policy decides
    (``shareable_cases``: a query, never a decision a case); or PermissionDenied (recorded) when
    the user may neither invite members nor share any open case. ``facts``: the request's
    (``policy.request_facts``), for a request that only reads."""
    cases = policy.shareable_cases(request.user, org, facts=facts).open().order_by("title", "id")
    if not (policy.can(request.user, Action.MANAGE_MEMBERS, org, facts=facts) or cases.exists()):
        policy.require(request.user, Action.MANAGE_MEMBERS, org, request=request, facts=facts)
    return cases


@login_required
def invitation_list(request: HttpRequest) -> HttpResponse:
    org = active_organization_or_404(request)
    facts = policy.request_facts(request, request.user)  # the page only reads: the memberships the request read
    _invitation_cases(request, org, facts=facts)
    invitations = (Invitation.objects.visible_to(request.user).for_org(org.pk).select_related("created_by", "case")
                   .prefetch_related("cases"))
    if not policy.can(request.user, Action.MANAGE_MEMBERS, org, facts=facts):
        invitations = invitations.filter(created_by=request.user)
    page = page_of(request, invitations.order_by("-created_at", "-id"), size=INVITATIONS_PAGE_SIZE)
    return render(request, "accounts/invitation_list.html", {"organization": org, "invitations": page, "page": page,
                                                            "now": timezone.now()})


@login_required
@require_http_methods(["GET", "POST"])
@mfa.require_recent_otp
def invitation_send(request: HttpRequest) -> HttpResponse:
    """Invite a consultant (or a staff member) by e-mail, optionally to named cases. Giving access
    away: a recent second factor is asked for (step-up)."""
    org = active_organization_or_404(request)
    cases = _invitation_cases(request, org)
    form = InvitationForm(request.POST or None, organization=org, user=request.user, cases_qs=cases,
                          initial=_invitation_initial(request, cases))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.invitation_create(organization=org, by=request.user, email=data["email"], role=data["role"],
                                       cases=data["cases"], language=data["language"], request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        except PermissionDenied:
            form.add_error(None, _("You may not give this access. Staff roles are invited by an organization "
                                   "admin; consultants to the cases you may share."))
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": data["email"]})
            return redirect("accounts:invitation_list")
    from apps.sharing.usecases import template_for

    template = template_for(org.pk, services.INVITATION_USE_CASE)
    return render(request, "accounts/invitation_send.html", {"organization": org, "form": form,
                                                             "grant_hours": template.default_hours},
                  status=400 if form.errors else 200)


def _invitation_initial(request: HttpRequest, cases) -> dict:
    """The address and the case a share page sends here for a recipient with no account
    (``?email=...&case=<public id>``): filled in, the case only if this user may open it."""
    initial: dict = {"email": request.GET.get("email", "")[:254]}
    try:
        case_id = UUID(request.GET.get("case", ""))
    except ValueError:
        return initial
    initial["cases"] = list(cases.filter(public_id=case_id).values_list("pk", flat=True))
    return initial


@login_required
def invitation_choices(request: HttpRequest) -> JsonResponse:
    """The matches of a search in the invitation form's list of cases (``?list=cases``), as the
    form would draw them, for the form's script to show as the search is typed (as the tumor
    board form's ``board_choices``): for whoever may send invitations in the active organization,
    as the form itself. ``ticked`` (repeated) are the ids already ticked, left out of the matches."""
    org = active_organization_or_404(request)
    # a search only reads: its decisions are made on the memberships (and grants) the request read
    cases = _invitation_cases(request, org, facts=policy.request_facts(request, request.user))
    return InvitationForm(organization=org, user=request.user, cases_qs=cases, request=request) \
        .choices_response(request.GET)


def _invitation_or_404(request: HttpRequest, invitation_id: UUID) -> Invitation:
    """The invitation the user may see (``visible_to``) by its public id; 404 otherwise."""
    invitation = Invitation.objects.visible_to(request.user).filter(public_id=invitation_id).first()
    if invitation is None:
        raise Http404
    return invitation


def _invitation_switch_first(request: HttpRequest, invitation: Invitation) -> HttpResponse | None:
    """Another of the person's organizations' invitation (a form of the invitations page from
    before a switch, another tab): withdrawn or sent again only once that organization is the
    active one. The switch page names the organization only, its button continuing to the
    invitations page; the request is refused there (403, recorded: ``switch_first``)."""
    return switch_first(request, invitation, Action.MANAGE_MEMBERS, then=reverse("accounts:invitation_list"))


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, invitation_id: UUID) -> HttpResponse:
    """Withdraw a pending invitation: its inviter, or whoever manages the members (404 to others).
    Another of their organizations' invitation: the switch page first."""
    invitation = _invitation_or_404(request, invitation_id)
    if (switch := _invitation_switch_first(request, invitation)) is not None:
        return switch
    try:
        services.invitation_revoke(invitation=invitation, by=request.user, request=request)
    except PermissionDenied:
        raise Http404 from None
    messages.success(request, _("Invitation withdrawn."))
    return redirect("accounts:invitation_list")


@login_required
@require_POST
@mfa.asks_step_up()  # a new working link: as for sending one (after the switch page)
def invitation_resend(request: HttpRequest, invitation_id: UUID) -> HttpResponse:
    """Send a pending (or expired) invitation's e-mail again, with a new link; the old one stops
    working. Who may: as for withdrawing it (404 to others, as there); its inviter, refused because
    they may no longer give the access it gives (or whose patient's case was closed), is told so on
    the invitations page. Another of their organizations' invitation: the switch page first."""
    invitation = _invitation_or_404(request, invitation_id)
    if (switch := _invitation_switch_first(request, invitation)) is not None:
        return switch  # before the step-up: nothing is sent from that page
    if (asked := mfa.step_up_first(request, back="accounts:invitation_list",
                                   organization_id=invitation.organization_id)) is not None:
        return asked
    try:
        services.invitation_resend(invitation=invitation, by=request.user, request=request)
    except PermissionDenied:
        if invitation.created_by_id != request.user.pk:
            raise Http404 from None
        messages.error(request, _("You may no longer give the access this invitation gives, so it was not sent "
                                  "again. You may still withdraw it."))
    except ValidationError as exc:
        for text in exc.messages:
            messages.error(request, text)
    else:
        messages.success(request, _("Invitation sent again to %(email)s. The link in the earlier e-mail no longer "
                                    "works.") % {"email": invitation.email})
    return redirect("accounts:invitation_list")


@login_required
@require_http_methods(["GET", "POST"])
@mfa.asks_step_up()  # giving access away: a recent second factor, after the switch page
def patient_invite(request: HttpRequest, case_id: UUID) -> HttpResponse:
    """Invite the case's patient to the patient portal; they confirm their date of birth."""
    from apps.cases.models import Case

    case = Case.objects.visible_to(request.user).select_related("patient", "organization") \
        .filter(public_id=case_id).first()
    if case is None:
        raise Http404
    # another of the person's organizations' case: its patient invited once it is the active one
    if (switch := switch_first(request, case, Action.SHARE_CASE, then=request.path)) is not None:
        return switch  # before the step-up: nobody is invited from that page
    policy.require(request.user, Action.SHARE_CASE, case, request=request)
    if not case.is_open:  # said before anything is typed or a code asked for (the service refuses it too)
        return render(request, "accounts/patient_invite.html",
                      {"case": case, "closed": _(services.PATIENT_CASE_CLOSED)},
                      status=400 if request.method == "POST" else 200)
    if case.patient.birth_date is None:  # said before a code is asked (the service refuses it too), with the way out
        return render(request, "accounts/patient_invite.html",
                      {"case": case, "no_birth_date": _(services.PATIENT_BIRTH_DATE_MISSING),
                       "may_correct": policy.can(request.user, Action.MANAGE_CASE, case)
                       and policy.can(request.user, Action.VIEW_PATIENT_IDENTITY, case)},
                      status=400 if request.method == "POST" else 200)
    if (asked := mfa.step_up_first(request, organization_id=case.organization_id)) is not None:
        return asked
    form = PatientInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.invitation_create(organization=case.organization, by=request.user,
                                       email=form.cleaned_data["email"], role="patient", patient=case.patient,
                                       case=case,
                                       language=form.cleaned_data["language"], request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("The patient was sent an invitation to the patient portal."))
            return redirect("accounts:invitation_list")
    return render(request, "accounts/patient_invite.html", {"case": case, "form": form},
                  status=400 if form.errors else 200)


# lazy: translated when a page is rendered, in its language (at import it would stay English)
_REFUSAL_TEXT = {
    Refusal.UNKNOWN: (gettext_lazy("This invitation link is not valid"),
                      gettext_lazy("The link may be incomplete or mistyped. Open it again from the e-mail, or ask the "
                        "person who invited you to send a new invitation.")),
    # an earlier e-mail's link, replaced by "Send again": it names nothing the link did not
    Refusal.SUPERSEDED: (gettext_lazy("A newer invitation e-mail was sent"),
                         gettext_lazy("This invitation was sent to you again in a newer e-mail, and the link in this "
                                      "earlier e-mail no longer works. Open the link in the latest invitation e-mail "
                                      "you received.")),
    Refusal.EXPIRED: (gettext_lazy("This invitation has expired"),
                      gettext_lazy("Invitations work for a limited time. Ask the person who invited you for a "
                                   "new one.")),
    Refusal.USED: (gettext_lazy("This invitation was already used"),
                   gettext_lazy("Each invitation link works once. If you accepted it, sign in with your e-mail address "
                     "and password.")),
    Refusal.REVOKED: (gettext_lazy("This invitation was withdrawn"),
                      gettext_lazy("The person who invited you withdrew it. Ask them if you still need access.")),
    Refusal.LOCKED: (gettext_lazy("This invitation is locked"),
                     gettext_lazy("The date of birth was entered wrongly too many times. Ask for a new invitation.")),
    Refusal.INVITER_RIGHTS: (gettext_lazy("This invitation can no longer be used"),
                             services.INVITATION_REFUSALS[Refusal.INVITER_RIGHTS]),
    Refusal.MEMBERSHIP_ENDED: (gettext_lazy("Your membership was ended"),
                               services.INVITATION_REFUSALS[Refusal.MEMBERSHIP_ENDED]),
    Refusal.CASE_CLOSED: (gettext_lazy("This invitation can no longer be used"),
                          services.INVITATION_REFUSALS[Refusal.CASE_CLOSED]),
    "throttled": (gettext_lazy("Too many invalid links"),
                  gettext_lazy("Too many invalid invitation links were opened from your network. Wait 15 minutes and "
                    "open the link from your e-mail again.")),
}


def _refused(request: HttpRequest, reason: str, invitation: Invitation | None = None) -> HttpResponse:
    services.invitation_refused(invitation=invitation, reason=reason, request=request)
    title, text = _REFUSAL_TEXT[reason]
    status = {Refusal.UNKNOWN: 404, "throttled": 429, Refusal.INVITER_RIGHTS: 403,
              Refusal.MEMBERSHIP_ENDED: 403}.get(reason, 410)
    return render(request, "accounts/invitation_refused.html", {"title": title, "text": text, "reason": reason},
                  status=status)


BIRTH_DATE_OK = "lightbox_invitation_birth_date_ok"


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Open an invitation: create the account (or sign in to the invited one) and accept. The
    second factor is enrolled right after, by the access gate, before anything else."""
    if brute_force.invitation_token_blocked(request):
        return _refused(request, "throttled")
    invitation, refusal = services.invitation_lookup(token)
    if invitation is None:
        brute_force.invitation_token_failed(request)
        return _refused(request, Refusal.UNKNOWN)
    # in the invitation's language, as its e-mail, unless the person has one of their own
    services.language_activate(request=request,
                               code=services.language_of_invitation(invitation=invitation, request=request))
    if refusal:
        return _refused(request, refusal, invitation)
    # the page says a second factor comes next only where the invited role must have one (a
    # patient's role never does: the organization's settings cannot ask it of them)
    context: dict = {"invitation": invitation, "organization": invitation.organization,
                     "second_factor_next": invitation.role in (invitation.organization.mfa_required_roles or [])}

    # patients first prove their date of birth (kept for this invitation in the session)
    if invitation.kind == InvitationKind.PATIENT and request.session.get(BIRTH_DATE_OK) != str(invitation.public_id):
        form = BirthDateForm(request.POST if request.POST.get("step") == "birth_date" else None)
        if form.is_bound and form.is_valid():
            if services.invitation_check_birth_date(invitation=invitation, value=form.cleaned_data["birth_date"],
                                                    request=request):
                request.session[BIRTH_DATE_OK] = str(invitation.public_id)
                return redirect(request.path)
            invitation.refresh_from_db()
            if invitation.locked_at is not None:
                return _refused(request, Refusal.LOCKED, invitation)
            form.add_error("birth_date", _("That date of birth does not match our records."))
        return render(request, "accounts/invitation_birth_date.html", {**context, "form": form},
                      status=400 if form.errors else 200)

    user = request.user if request.user.is_authenticated else None
    if user is not None:
        if user.email.lower() != invitation.email.lower():
            return render(request, "accounts/invitation_wrong_account.html", context, status=403)
        if request.method == "POST" and request.POST.get("step") == "accept":
            return _accept_and_continue(request, invitation, user)
        return render(request, "accounts/invitation_accept_signed_in.html", context)

    if User.objects.filter(email=invitation.email.lower()).exists():
        context["login_url"] = with_next("account_login", request.path)
        services.invitation_sign_in_remember(invitation=invitation, request=request)  # its language
        return render(request, "accounts/invitation_sign_in.html", context)

    form = AcceptForm(request.POST if request.POST.get("step") == "account" else None, email=invitation.email)
    if form.is_bound and form.is_valid():
        try:
            user = services.account_create_for_invitation(invitation=invitation,
                                                          full_name=form.cleaned_data["full_name"],
                                                          password=form.cleaned_data["password1"], request=request)
        except ValidationError as exc:
            if exc.code != services.ACCOUNT_EXISTS:
                form.add_error(None, exc)
            else:  # made meanwhile (the other submit of a double click): the page asking them to sign in
                context["login_url"] = with_next("account_login", request.path)
                services.invitation_sign_in_remember(invitation=invitation, request=request)
                return render(request, "accounts/invitation_sign_in.html", context, status=409)
        else:
            # accepted first, then signed in: the sign-in is recorded in the organization's trail
            # (the membership exists by then), not in the trail of users of no organization
            return _accept_and_continue(request, invitation, user, sign_in=True)
    return render(request, "accounts/invitation_accept.html", {**context, "form": form},
                  status=400 if form.errors else 200)


def _accept_and_continue(request: HttpRequest, invitation: Invitation, user: User, *,
                         sign_in: bool = False) -> HttpResponse:
    try:
        accepted = services.invitation_accept(invitation=invitation, user=user, request=request)
    except ValidationError as exc:  # refused now (services.INVITATION_REFUSALS), else used meanwhile
        return _refused(request, exc.code if exc.code in services.INVITATION_REFUSALS else Refusal.USED, invitation)
    except PermissionDenied:
        return _refused(request, Refusal.USED, invitation)
    if sign_in:
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.pop(BIRTH_DATE_OK, None)
    from apps.organizations.services import ACTIVE_ORG_SESSION_KEY

    request.session[ACTIVE_ORG_SESSION_KEY] = str(invitation.organization.public_id)
    messages.success(request, _("Welcome to %(org)s on Lightbox.") % {"org": invitation.organization.name})
    if accepted.cases_not_given:
        count = accepted.cases_not_given
        messages.warning(request, ngettext(
            "%(count)s case named in the invitation was not shared with you: the person who invited you may no "
            "longer share it. Ask them, or the team caring for the patient, if you still need it.",
            "%(count)s cases named in the invitation were not shared with you: the person who invited you may no "
            "longer share them. Ask them, or the team caring for the patient, if you still need them.",
            count) % {"count": count})
    if invitation.kind == InvitationKind.PATIENT:
        target = reverse("education:portal")
    elif invitation.cases.exists():
        target = reverse("sharing:shared_with_me")
    else:
        target = reverse("dashboard")
    # The access gate sends the user through second-factor enrolment first, then here.
    if mfa.mfa_required(user) and not mfa.has_second_factor(user):
        return redirect(with_next("accounts:mfa_setup", target))
    return redirect(target)


# --- SSO ------------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def sso_settings(request: HttpRequest) -> HttpResponse:
    org = active_organization_or_404(request)
    policy.require(request.user, Action.MANAGE_ORGANIZATION, org, request=request)
    return _sso_settings_form(request, org)


@mfa.require_recent_otp  # its provider decides who signs in as the staff: a recent second factor, as for members
def _sso_settings_form(request: HttpRequest, org) -> HttpResponse:
    config = SSOConfig.objects.filter(organization=org).first()
    initial = {"enabled": True}
    if config:
        initial = {"enabled": config.enabled, "issuer": config.issuer, "client_id": config.client_id,
                   "allowed_domains": config.allowed_domains}
    form = SSOConfigForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        if not config and not form.cleaned_data["client_secret"]:
            form.add_error("client_secret", _("Enter the client secret."))
        else:
            try:
                services.sso_config_save(organization=org, by=request.user, request=request, **form.cleaned_data)
            except ValidationError as exc:  # by field: the issuer, or the domains
                form.add_error(None if hasattr(exc, "error_dict") else "allowed_domains", exc)
            else:
                messages.success(request, _("Single sign-on settings saved."))
                return redirect("accounts:sso_settings")
    callback = request.build_absolute_uri(
        reverse("openid_connect_callback", kwargs={"provider_id": f"org-{org.slug}"}))
    return render(request, "accounts/sso_settings.html", {"organization": org, "form": form, "config": config,
                                                          "callback_url": callback},
                  status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def sso_start(request: HttpRequest) -> HttpResponse:
    """Sign in with your organization: an address that is staff of an organization whose single
    sign-on takes it (``sso.sso_config_for``) is e-mailed a link on to that organization's provider,
    by a task queued after the request (``tasks.sso_link_send_task``); one that several take, the
    choice of them and no link (``sso.sso_configs_for``). Every address gets the same
    page (200) after the same work (the lookup, and a task queued: ids 0 for an address e-mailed
    nothing), so that the page tells nobody which addresses are staff (``apps.accounts.sso``).
    Tries are counted per client, refused past LIGHTBOX_SSO_START_CLIENT_MAX_TRIES (429,
    recorded), and per address, which only stops the e-mails (``brute_force.sso_start_claim``)."""
    from apps.accounts.tasks import sso_link_send_task
    from apps.core.queue import send_on_commit

    form = SSOStartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"].lower()
        allowed, mailed = brute_force.sso_start_claim(request, email)
        if not allowed:
            return render(request, "accounts/sso_start.html",
                          {"throttled": True, "minutes": settings.LIGHTBOX_SSO_START_WINDOW_MINUTES}, status=429)
        configs = sso.sso_configs_for(email)
        user = User.objects.filter(email=email, is_active=True).only("pk").first()
        to = (0, 0)
        if mailed and configs and user is not None:
            to = (user.pk, configs[0].pk if len(configs) == 1 else sso.CHOOSE)
        send_on_commit(sso_link_send_task, *to)
        return render(request, "accounts/sso_start.html", {"sent": True, "email": email})
    return render(request, "accounts/sso_start.html", {"form": form}, status=400 if form.errors else 200)


@never_cache
@require_http_methods(["GET", "POST"])
def sso_continue(request: HttpRequest, token: str) -> HttpResponse:
    """The e-mailed link of ``sso_start``: GET, a button (a mail scanner opening the link starts
    nothing, nor uses it up); POST (CSRF-checked), on to the organization's provider, checked again
    that the address is still its staff, and the link used up once the redirect to the provider is
    built: a provider that cannot be reached uses nothing up (``sso.sso_link_start``). The button
    names the provider's host, as ``sso_organization``'s does. An expired, used or altered link:
    400, with the way to ask for a new one."""
    if request.method == "POST":
        started = sso.sso_link_start(token, sso.sso_config_for,
                                     lambda config: sso_provider_login(request, config.provider_id))
        if started is None:
            return render(request, "accounts/sso_continue.html", {}, status=400)
        return started
    found = sso.sso_link_read(token, sso.sso_config_for)
    if found is None:
        return render(request, "accounts/sso_continue.html", {}, status=400)
    _user, config, _nonce = found
    return render(request, "accounts/sso_continue.html",
                  {"organization": config.organization, "provider_host": config.issuer_host})


@never_cache
@require_http_methods(["GET", "POST"])
def sso_organization(request: HttpRequest, slug: str) -> HttpResponse:
    """An organization's own way into its single sign-on, to bookmark (``/accounts/sso/<slug>/``):
    GET, a button naming it, and the provider's host (``SSOConfig.issuer_host``: any organization's
    administrator sets its provider, so the page says where the password goes); POST, on to its
    provider. It needs no e-mail, and tells only that the organization signs in with single
    sign-on (as its provider's address does), nothing of who is its staff: the provider's answer
    is checked when it comes back (``pre_social_login``). An organization without single sign-on
    on: 404."""
    config = sso.organization_config(slug)
    if config is None:
        raise Http404
    if request.method == "POST":
        return sso_provider_login(request, config.provider_id)
    return render(request, "accounts/sso_continue.html",
                  {"organization": config.organization, "provider_host": config.issuer_host})


def sso_provider_login(request: HttpRequest, provider_id: str) -> HttpResponse:
    """allauth's OpenID Connect sign-in start (at its own address, before allauth's view there;
    and for "Sign in with your organization"). It fetches the provider's discovery document."""
    from allauth.socialaccount.providers.openid_connect.views import login as oidc_login

    return _sso_outbound(request, provider_id, oidc_login)


def sso_provider_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """allauth's OpenID Connect return address (before allauth's view there). It fetches the
    discovery document again before allauth's own error handling (which
    ``SocialAccountAdapter.on_authentication_error`` hooks for the token, userinfo and JWKS
    requests): a name rebound to an internal address between the start and the return, or a
    provider gone, gets the same pages as at the start. A sign-in the provider's answer was
    accepted for (``pre_social_login``) is remembered on this browser: the sign-in page then offers
    "Continue with <organization>" (``sso.remember_organization``)."""
    from allauth.socialaccount.providers.openid_connect.views import callback as oidc_callback

    response = _sso_outbound(request, provider_id, oidc_callback)
    config = getattr(request, "lightbox_sso_accepted", None)  # set by SocialAccountAdapter.pre_social_login
    if config is not None and response.status_code < 400:
        sso.remember_organization(response, config)  # "Continue with <organization>" on this browser
    return response


def _sso_outbound(request: HttpRequest, provider_id: str, view: Any) -> HttpResponse:
    """``view`` (allauth's), whose requests to the provider go out through
    ``apps.accounts.outbound``: one to an address the portal does not connect to gets the refusal
    page (403, recorded), a provider down or unreachable a page that says so (503), never a
    server error nor the storage-unavailable page every other OSError a view raises gets."""
    from allauth.core.exceptions import ImmediateHttpResponse
    from allauth.socialaccount.adapter import get_adapter

    from apps.accounts import outbound

    try:
        return view(request, provider_id)
    except outbound.DestinationRefused as exc:
        config = SSOConfig.objects.filter(organization__slug=provider_id.removeprefix("org-")).first()
        try:
            get_adapter(request).refuse_destination(request, exc, config and config.organization_id)
        except ImmediateHttpResponse as refused:
            return refused.response
        raise
    except requests.RequestException as exc:
        logger.warning("SSO provider %s unreachable (%s)", provider_id, type(exc).__name__)
        response = render(request, "accounts/sso_refused.html", {"reason": "provider_unreachable"}, status=503)
        response["Retry-After"] = "60"
        return response


# --- managing second factors -----------------------------------------------------------------

@never_cache
@login_required
def security(request: HttpRequest) -> HttpResponse:
    """My second factor: whether it is set up, and new recovery codes."""
    user = request.user
    device = StaticDevice.objects.filter(user=user, confirmed=True).first()
    return render(request, "accounts/security.html", {
        "enrolled": mfa.has_second_factor(user), "required": mfa.mfa_required(user),
        "codes_left": device.token_set.count() if device else 0,
        "admin_resets": policy.second_factor_resetting_organization(user) is not None})


@login_required
@require_POST
@mfa.asks_step_up()
def recovery_codes_renew(request: HttpRequest) -> HttpResponse:
    """New recovery codes (the old ones stop working); shown once, then saved like the first. From
    the security page, or from the recovery codes page once the codes not saved yet were shown
    (its ``next`` kept). A button: the step-up returns to the page it is on, that page's ``next``
    kept, to press it again (a GET of this view is refused: found by a reviewer, a 405)."""
    back = (with_next("accounts:recovery_codes", next_url(request)) if "next" in request.POST
            else reverse("accounts:security"))
    if (asked := mfa.step_up_first(request, back=back)) is not None:
        return asked
    if not mfa.has_second_factor(request.user):
        return redirect("accounts:mfa_setup")
    mfa.recovery_codes_issue(request.user, request)
    record(action="auth.mfa_recovery_codes_renewed", actor=request.user, request=request)
    return redirect(with_next("accounts:recovery_codes", next_url(request, default="accounts:security")))


@login_required
@require_POST
@mfa.asks_step_up()  # after the switch page
def member_mfa_reset(request: HttpRequest, membership_id: UUID) -> HttpResponse:
    """An org admin removes a member's authenticator (lost phone): all their sessions end and
    they enrol again at their next sign-in."""
    from apps.organizations.models import Membership

    membership = Membership.objects.visible_to(request.user).select_related("user", "organization") \
        .filter(public_id=membership_id).first()
    if membership is None:
        raise Http404
    # a member of another of the person's organizations: reset once it is the active one
    then = reverse("organizations:membership_edit", kwargs={"membership_id": membership.public_id})
    if (switch := switch_first(request, membership, Action.MANAGE_MEMBERS, then=then)) is not None:
        return switch  # before the step-up: nothing is reset from that page
    policy.require(request.user, Action.MANAGE_MEMBERS, membership.organization, request=request)
    # a button (a POST): the step-up returns to the membership page it is on, to press it again
    if (asked := mfa.step_up_first(request, back=then, organization_id=membership.organization_id)) is not None:
        return asked
    try:
        policy.require_decided(policy.second_factor_reset_allowed(request.user, membership.user), request.user,
                               Action.MANAGE_MEMBERS, membership, request=request)
    except PermissionDenied:  # a member of another organization too: recorded, and said why
        messages.error(request, _("%(email)s is also a member of another organization, so their second factor is "
                                  "not this organization's alone to reset. Ask the Lightbox operator to reset it.")
                       % {"email": membership.user.email})
        return redirect("organizations:membership_edit", membership_id=membership.public_id)
    services.mfa_reset(user=membership.user, by=request.user, request=request)
    messages.success(request, _("The second factor of %(email)s was reset; they set it up again at their next "
                                "sign-in.") % {"email": membership.user.email})
    return redirect("organizations:members")
