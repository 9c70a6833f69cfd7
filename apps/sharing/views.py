"""Sharing pages: thin views that parse, call a selector or service, and render.

Link-holder pages resolve their actor with ``policy.actor_for(request)``; every decision is
``policy.can``/``require``; every refusal is recorded."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from urllib.parse import urlencode
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.accounts.mfa import asks_step_up, step_up_first
from apps.accounts.middleware import is_patient_only
from apps.core.pagination import page_of
from apps.core.redirects import with_next
from apps.organizations.selectors import active_organization_or_404
from apps.organizations.switching import switch_first
from apps.sharing import policy, selectors, services
from apps.sharing.forms import (
    ExtendForm,
    OriginalDecisionForm,
    OriginalRequestForm,
    SecondFactorForm,
    ShareForm,
    SharingPolicyForm,
)
from apps.sharing.models import GrantState, OriginalRequestStatus, SecondFactor, ShareLink, share_kind
from apps.sharing.policy import Action
from apps.sharing.services import LinkRefusal
from apps.sharing.usecases import TEMPLATES, RecipientKind, Rendition, UseCase, template_for

SECOND_FACTOR_SESSION_KEY = services.LINK_SECOND_FACTOR_SESSION_KEY
#: the share review's confirmation tokens issued in this session (each ""; their use is claimed in
#: the database, ``services.share_confirmation_claim``)
SHARE_CONFIRM_SESSION_KEY = "lightbox_share_confirm"
SHARE_CONFIRM_KEEP = 20
OPENED_SESSION_KEY = services.OPENED_SESSION_KEY
#: grants per page of "My shares" and "Shared with me" (a busy sharer makes thousands), and
#: studies per page of a shared case
SHARES_PAGE_SIZE = 50

_REFUSAL_STATUS = {LinkRefusal.DEAD: 410}


def _link_url(request: HttpRequest, raw: str) -> str:
    return request.build_absolute_uri(reverse("sharing:link_open", kwargs={"token": raw}))


def _share_row(grant) -> str:
    """The share's row in "My shares" (where revoke and renew are sent from)."""
    return reverse("sharing:my_shares") + f"#share-{grant.public_id}"


#: what the step-up and enrolment pages say to someone sent there by the share steps
SHARE_STEP_UP_WHY = gettext_lazy("Sharing gives someone else access to a patient's images: it asks for your "
                                 "second factor.")


def _case_for_manager(request: HttpRequest, case_id: UUID):
    from apps.cases.models import Case

    case = Case.objects.visible_to(request.user).select_related("organization", "patient").filter(
        public_id=case_id).first()
    if case is None:
        raise Http404
    return case


@login_required
@require_http_methods(["GET", "POST"])
@policy.serves(Action.SHARE_CASE)
@asks_step_up(why=SHARE_STEP_UP_WHY)  # _share_steps asks, once the case is known to be the user's to share
def case_share(request: HttpRequest, case_id: UUID) -> HttpResponse:
    """Share a case in a few steps: template, recipients, scope, expiry, then confirm."""
    case = _case_for_manager(request, case_id)
    # another of the person's organizations' case: shared once that organization is the active one
    if (switch := switch_first(request, case, Action.SHARE_CASE, then=request.path)) is not None:
        return switch
    policy.require(request.user, Action.SHARE_CASE, case, request=request)
    return _share_steps(request, case)


@login_required
@require_http_methods(["GET", "POST"])
@policy.serves(Action.SHARE_CASE)
@asks_step_up(why=SHARE_STEP_UP_WHY)
def study_share(request: HttpRequest, study_id: UUID) -> HttpResponse:
    """Share one study (of a case): the same steps, with the study ticked."""
    from apps.imaging.models import Study

    study = Study.objects.visible_to(request.user).select_related("case").filter(public_id=study_id).first()
    if study is None:
        raise Http404
    if (switch := switch_first(request, study, Action.SHARE_CASE, then=request.path)) is not None:
        return switch
    policy.require(request.user, Action.SHARE_CASE, study, request=request)
    if study.case is None:
        messages.error(request, _("Attach this study to a case before sharing it."))
        # its page offers the cases it may go into (imaging.views.study_attach)
        return redirect(f"{study.get_absolute_url()}#attach")
    return _share_steps(request, study.case, studies=[study])


def _share_steps(request: HttpRequest, case, studies=()) -> HttpResponse:
    # giving access away needs a recent second factor (step-up; the views' asks_step_up say why),
    # its refusal recorded in the case's organization's audit trail only
    if (asked := step_up_first(request, organization_id=case.organization_id)) is not None:
        return asked
    form = ShareForm(request.POST or None, case=case,
                     initial={"studies": [s.pk for s in studies]} if studies else None)
    # the templates as this organization applies them (its defaults and maxima), not the code's table
    context = {"case": case, "form": form,
               "templates": [template_for(case.organization_id, key) for key in TEMPLATES],
               "anonymous_enabled": policy.anonymous_links_allowed(case.organization)}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        rendition = data.get("rendition") or None
        renditions = ([Rendition.ORIGINAL, Rendition.PREVIEW] if rendition == Rendition.ORIGINAL
                      else ([Rendition.PREVIEW] if rendition else None))
        if request.POST.get("edit") == "1":  # back from the review to change what was entered
            return render(request, "sharing/share_form.html", context)
        token = request.POST.get("confirm_token", "")
        if request.POST.get("confirm") != "1" or not _share_confirm_issued(request, token):
            # the review shows what confirming creates, and refuses here what creating would refuse;
            # a confirmation without a token issued by a review (or one this session no longer
            # holds) is reviewed again
            try:
                terms = services.share_terms(
                    organization_id=case.organization_id, use_case=data["use_case"],
                    recipient_kind=data["recipient_kind"], hours=data.get("hours"), renditions=renditions,
                    download_limit=data.get("download_limit"), second_factor=data.get("second_factor") or "")
                services.share_recipient_check(case=case, use_case=data["use_case"],
                                               recipient_kind=data["recipient_kind"], grantee=data["grantee"],
                                               grantee_email=data.get("recipient_email") or "",
                                               group_members=data.get("group_members") or ())
            except ValidationError as exc:
                form.add_error(exc.code if exc.code in form.fields else None, exc)  # beside the field it is about
            else:
                context.update(confirming=True, template=terms.template, terms=terms, hours=terms.hours,
                               existing=_live_shares_to_recipient(request, case, data),
                               gives=services.share_terms_gives(case=case, terms=terms),
                               kind=share_kind(recipient_kind=data["recipient_kind"], use_case=data["use_case"]),
                               held_back=selectors.studies_held_back_from_patient(
                                   user=request.user, case=case, use_case=data["use_case"],
                                   grantee=data["grantee"], studies=data.get("studies") or []),
                               confirm_token=_share_confirm_issue(request))
                return render(request, "sharing/share_confirm.html", context)
            return render(request, "sharing/share_form.html", context, status=400)
        # claimed before the share is made, in the database (one row per token, committed at
        # once): the same confirmation sent again (a reload, "Confirm form resubmission", Back and
        # send), even at the same moment as this one, finds it taken; the share it made is not
        # made twice, and its link is not shown again (a double click is stopped in the browser,
        # static/js/forms.js; a reload sends the form again from the browser's memory)
        claimed, made = services.share_confirmation_claim(user=request.user, token=token)
        if not claimed:
            if not made:  # the first confirmation still runs: its share is not there yet
                messages.info(request, _("This share is being created; check My shares in a moment."))
                return redirect("sharing:my_shares")
            messages.info(request, _("This share was already created."))
            return redirect(reverse("sharing:my_shares") + f"#share-{made}")
        try:
            grant, link, raw = services.share_create(
                case=case, by=request.user, use_case=data["use_case"], recipient_kind=data["recipient_kind"],
                grantee=data["grantee"], group_members=data["group_members"], group_name=data.get("group_name", ""),
                grantee_email=data.get("recipient_email") or "", hours=data.get("hours"), renditions=renditions,
                download_limit=data.get("download_limit"), second_factor=data.get("second_factor") or "",
                passcode=data.get("passcode") or "", max_uses=data.get("max_uses"),
                not_before=data.get("not_before"), studies=list(data.get("studies") or []), request=request)
        except ValidationError as exc:
            services.share_confirmation_release(user=request.user, token=token)  # nothing made: it may be sent again
            form.add_error(exc.code if exc.code in form.fields else None, exc)  # beside the field it is about
        except PermissionDenied as exc:
            services.share_confirmation_release(user=request.user, token=token)
            form.add_error("recipient_kind", str(exc) or _("Not allowed."))
        except Exception:
            # anything else unexpected made nothing either (share_create is one transaction):
            # released, so that a reload after the error page tries again rather than send the
            # user to My shares for a share that was never made
            services.share_confirmation_release(user=request.user, token=token)
            raise
        else:
            services.share_confirmation_made(user=request.user, token=token, grant=grant)
            return render(request, "sharing/share_done.html",
                          {"case": case, "grant": grant, "link": link, "url": _link_url(request, raw)})
    if form.has_error("recipient_email", "no_account"):
        # the address as entered (a field in error leaves cleaned_data; it was a valid address)
        context["invite_url"] = _invite_first_url(case, use_case=form.cleaned_data.get("use_case", ""),
                                                  email=form.data.get("recipient_email", "").strip())
    return render(request, "sharing/share_form.html", context, status=400 if form.errors else 200)


#: the most of a recipient's live shares of the case the share review lists (the others counted)
EXISTING_SHARES_LISTED = 5


def _live_shares_to_recipient(request: HttpRequest, case, data: dict) -> dict | None:
    """The shares of ``case`` its named recipient (a person, an address) holds already, for the
    review to say so before a second one is made: not blocked (a second share may be meant), but
    asked to confirm, with Extend offered on each that can be extended by this person (the
    policy's MANAGE_GRANT and ``services.grants_extendable``, as My shares offers it). Only those
    the sharer may be told of (``policy.grants_told_of``: theirs to manage, or made by them)."""
    kind = data.get("recipient_kind")
    if kind not in (RecipientKind.USER, RecipientKind.EMAIL):
        return None
    from apps.accounts.models import User

    email = (data.get("recipient_email") or "").lower() if kind == RecipientKind.EMAIL else ""
    user = data.get("grantee") if kind == RecipientKind.USER else (
        User.objects.filter(email=email, is_active=True).first() if email else None)
    grants = selectors.live_shares_to(case=case, user=user, email=email)
    facts = policy.request_facts(request, request.user)
    grants = [g for g, told in zip(grants, policy.grants_told_of(request.user, grants, facts=facts), strict=True)
              if told]
    if not grants:
        return None
    manages = policy.can_each(request.user, Action.MANAGE_GRANT, grants, facts=facts)
    for grant, may, extendable in zip(grants, manages, services.grants_extendable(grants=grants), strict=True):
        grant.can_extend = may and extendable
    return {"count": len(grants), "listed": grants[:EXISTING_SHARES_LISTED],
            "more": max(len(grants) - EXISTING_SHARES_LISTED, 0)}


def _invite_first_url(case, *, use_case: str, email: str) -> str:
    """Where to invite an address that has no account (the one way to an account): the patient
    invitation of this case for a patient-education share, else the organization's invitation
    page with the address and this case filled in (its acceptance shares the case with them)."""
    if use_case == UseCase.PATIENT_EDUCATION:
        return reverse("accounts:patient_invite", kwargs={"case_id": case.public_id})
    query = urlencode({"email": email, "case": str(case.public_id)})
    return f"{reverse('accounts:invitation_send')}?{query}"


def _share_confirm_issue(request: HttpRequest) -> str:
    """A one-time token for the review's confirmation form, kept in the session (the newest
    ``SHARE_CONFIRM_KEEP``, for reviews open in several tabs): confirming claims it in the database
    (``services.share_confirmation_claim``), so sending the same confirmation again makes no second
    share (``_share_steps``)."""
    token = secrets.token_urlsafe(16)
    issued = dict(request.session.get(SHARE_CONFIRM_SESSION_KEY, {}))
    issued[token] = int(time.time())  # when: its claim is kept as long (services.share_confirmations_prune)
    request.session[SHARE_CONFIRM_SESSION_KEY] = dict(list(issued.items())[-SHARE_CONFIRM_KEEP:])
    return token


def _share_confirm_issued(request: HttpRequest, token: str) -> bool:
    """Whether ``token`` was issued by a review of this session less than SESSION_COOKIE_AGE ago.
    Older claims are deleted (``services.share_confirmations_prune``; a session that stays in use
    outlives its cookie age): such a token is reviewed again, never claimed a second time."""
    issued_at = request.session.get(SHARE_CONFIRM_SESSION_KEY, {}).get(token)
    return isinstance(issued_at, int) and time.time() - issued_at < settings.SESSION_COOKIE_AGE


@login_required
def my_shares(request: HttpRequest) -> HttpResponse:
    """Shares I made, with their state and usage, and revoke (asked a second time: ``grant_revoke``).
    Renew is offered where renewing would succeed (the service's own rule and the policy's
    RENEW_GRANT)."""
    # the active organization's shares and requests; the others' are behind the switch (``elsewhere``)
    page = page_of(request, selectors.grants_created_by(user=request.user, request=request), size=SHARES_PAGE_SIZE)
    grants = selectors.with_state(page)
    # the page only reads: its decisions share the memberships and grants the request read
    for g, renewable in zip(grants, services.grants_renewable(grants=grants, by=request.user, request=request),
                            strict=True):
        g.can_renew = renewable
    # Extend only where a later expiry is possible (the service's rule, as for renewing)
    for g, extendable in zip(grants, services.grants_extendable(grants=grants), strict=True):
        g.can_extend = extendable
    pending = page_of(request, selectors.original_requests_pending_for(user=request.user, request=request),
                      size=SHARES_PAGE_SIZE, param="requests")
    org = request.organization  # type: ignore[attr-defined]
    return render(request, "sharing/my_shares.html", {
        "grants": grants, "page": page, "pending": pending,
        "elsewhere": selectors.elsewhere_made(user=request.user, request=request),
        "can_edit_policy": bool(org) and policy.can(request.user, Action.MANAGE_ORGANIZATION, org,
                                                    facts=policy.request_facts(request, request.user))})


@login_required
def shared_with_me(request: HttpRequest) -> HttpResponse:
    # what the active organization (or one the person is not a member of) shared with them; their
    # other organizations' shares and notices are behind the switch (``elsewhere``)
    page = page_of(request, selectors.grants_received(user=request.user, request=request), size=SHARES_PAGE_SIZE)
    grants = selectors.with_case_titles(selectors.with_state(page, holder=request.user, request=request),
                                        user=request.user, request=request)
    # the offer to ask for the original: the policy's decision, as on the shared case (asked for
    # the page's active grants at once, so the queries do not grow with the list)
    active = [g for g in grants if g.current_state == GrantState.ACTIVE]
    # (on the memberships the request read: ``policy.request_facts``)
    asks = policy.can_each(request.user, Action.REQUEST_ORIGINAL, active,
                           facts=policy.request_facts(request, request.user))
    requestable = {g.pk for g, may in zip(active, asks, strict=True) if may}
    asked = selectors.original_requests_latest(user=request.user, grants=grants)
    # one request a person and case: the one waiting is shown on each active share of its case,
    # whichever it was made under (none of them offers another: the policy's PENDING)
    pending = policy.pending_original_requests(request.user, {g.case_id for g in active})
    on_portal = policy.use_cases_without(Action.VIEW_CASE)  # no case page: shown on the patient portal
    for g in grants:
        g.on_portal = g.use_case in on_portal
        g.can_request_original = g.pk in requestable
        # the newest of theirs: shown while it waits
        g.original_request = (pending.get(g.case_id) if g in active else None) or asked.get(g.pk)
    return render(request, "sharing/shared_with_me.html", {
        "grants": grants, "page": page,
        "notifications": selectors.notifications_for(user=request.user, request=request),
        "elsewhere": selectors.elsewhere_received(user=request.user, request=request)})


@login_required
@require_http_methods(["GET", "POST"])
@policy.serves(Action.MANAGE_GRANT)
def grant_revoke(request: HttpRequest, grant_id: UUID) -> HttpResponse:
    """GET: whose access to which case revoking ends, and its own button (My shares' Revoke took a
    colleague's access away in one tap: too easy a slip on a tablet; found by QA). POST
    (CSRF-checked): revoke it through ``services.grants_revoke``, as before the confirmation (the
    API revokes through its own endpoint, without one)."""
    grant = selectors.grant_get_for_manager(user=request.user, public_id=grant_id)
    then = request.path if request.method == "GET" else _share_row(grant)
    if (switch := switch_first(request, grant, Action.MANAGE_GRANT, then=then)) is not None:
        return switch
    policy.require(request.user, Action.MANAGE_GRANT, grant, request=request,
                   facts=policy.decision_facts(request, request.user))
    if request.method == "GET":
        # nothing left to revoke (a used-up link: the browsers that opened it still hold it)
        if grant.state() not in (GrantState.ACTIVE, GrantState.SCHEDULED, GrantState.USE_LIMIT_REACHED):
            messages.info(request, _("This share has already ended."))
            return redirect(_share_row(grant))
        return render(request, "sharing/grant_revoke.html", {"grant": grant, "cancel_url": _share_row(grant)})
    if services.grants_revoke(grants=[grant], by=request.user, reason="revoked by sharer", request=request):
        messages.success(request, _("The share was revoked. It stops working on the recipient's next request."))
    return redirect("sharing:my_shares")


@login_required
@require_http_methods(["GET", "POST"])
@policy.serves(Action.MANAGE_GRANT)
@asks_step_up()  # a longer access for someone else: a recent second factor, as for sharing (after the switch page)
def grant_extend(request: HttpRequest, grant_id: UUID) -> HttpResponse:
    grant = selectors.grant_get_for_manager(user=request.user, public_id=grant_id)
    if (switch := switch_first(request, grant, Action.MANAGE_GRANT, then=request.path)) is not None:
        return switch  # before the step-up: nothing is extended from that page
    policy.require(request.user, Action.MANAGE_GRANT, grant, request=request,
                   facts=policy.decision_facts(request, request.user))
    if (asked := step_up_first(request, organization_id=grant.organization_id)) is not None:
        return asked
    # the organization's sharing rules, read once for every question the page asks of them
    org_policy = services.sharing_policy_read(grant.organization_id)
    refusal = services.grant_extend_refusal(grant=grant, org_policy=org_policy)
    if refusal is not None:
        # no later expiry is possible: said why, with no form that cannot succeed
        return render(request, "sharing/grant_extend.html",
                      {"grant": grant, "refusal": refusal, "cancel_url": _share_row(grant),
                       "refusal_message": services.grant_extend_refusal_message(grant=grant, refusal=refusal,
                                                                                org_policy=org_policy)},
                      status=400 if request.method == "POST" else 200)
    form = ExtendForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.grant_extend(grant=grant, by=request.user, expires_at=form.cleaned_data["expires_at"],
                                  reason=form.cleaned_data["reason"], request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("The share was extended."))
            return redirect("sharing:my_shares")
    template = template_for(grant.organization_id, grant.use_case, template_settings=org_policy.template_settings or {})
    return render(request, "sharing/grant_extend.html",
                  {"grant": grant, "form": form, "template": template, "cancel_url": _share_row(grant),
                   # the way to more time past the maximum: Renew only where My shares offers it
                   "renewable": services.grant_renew_offered(grant=grant, by=request.user, org_policy=org_policy),
                   "ceiling": services.grant_extend_ceiling(grant=grant, org_policy=org_policy)},
                  status=400 if form.errors else 200)


@login_required
@require_POST
@asks_step_up()  # a new share and its link: as for sharing (and the API), after the switch page
def grant_renew(request: HttpRequest, grant_id: UUID) -> HttpResponse:
    grant = selectors.grant_get_for_manager(user=request.user, public_id=grant_id)
    if (switch := switch_first(request, grant, Action.RENEW_GRANT, then=_share_row(grant))) is not None:
        return switch  # before the step-up: nothing is renewed from that page
    policy.require(request.user, Action.RENEW_GRANT, grant, request=request,
                   facts=policy.decision_facts(request, request.user))
    if (asked := step_up_first(request, back="sharing:my_shares", organization_id=grant.organization_id)) is not None:
        return asked
    try:
        new, link, raw = services.grant_renew(grant=grant, by=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("sharing:my_shares")
    except PermissionDenied as exc:  # the organization switched anonymous links off (recorded)
        messages.error(request, str(exc))
        return redirect("sharing:my_shares")
    return render(request, "sharing/share_done.html",
                  {"case": new.case, "grant": new, "link": link, "url": _link_url(request, raw), "renewed": True})


@login_required
@require_http_methods(["GET", "POST"])
@policy.serves(Action.REQUEST_ORIGINAL)
def original_request_create(request: HttpRequest, grant_id: UUID) -> HttpResponse:
    """The form to ask for the original DICOM under a grant. Shown only to whom the service would
    take it from (the policy's REQUEST_ORIGINAL): anyone else is refused (recorded), as the submit
    is; a recipient who can download the original already, or whose earlier request waits for a
    decision, is sent back to the case, told so (a submit is refused by the service, shown here).

    A share of another of the person's organizations (one they are staff of, not the active one:
    a link from "Shared with me" or a notice of before a switch) asks to switch first, as its shared
    case does, before anything else is read; a submit from there is refused and recorded, no
    request made (``policy.ACTIVE_ORGANIZATION_ACTIONS``). An outside recipient is not asked."""
    grant = selectors.grant_get_for_recipient(user=request.user, public_id=grant_id)
    if (switch := switch_first(request, grant, Action.REQUEST_ORIGINAL, then=request.path)) is not None:
        return switch
    refusal = policy.original_request_refusal(request.user, grant)
    told = (policy.OriginalRefusal.HAS_ORIGINAL, policy.OriginalRefusal.PENDING)
    if refusal in told and request.method == "GET":
        # the one waiting (under this share or another of the case) is named: when, under which share
        messages.info(request, _("You can already download the original DICOM.")
                      if refusal is policy.OriginalRefusal.HAS_ORIGINAL
                      else services.original_request_pending_message(user=request.user, case_id=grant.case_id))
        return redirect("sharing:shared_case", case_id=grant.case.public_id)
    if refusal is not None and refusal not in told:
        policy.require(request.user, Action.REQUEST_ORIGINAL, grant, request=request)  # 403, recorded
    form = OriginalRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.original_request_create(grant=grant, by=request.user, reason=form.cleaned_data["reason"],
                                             request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Your request was sent. You will be notified of the decision."))
            return redirect("sharing:shared_with_me")
    return render(request, "sharing/original_request.html", {"grant": grant, "form": form},
                  status=400 if form.errors else 200)


#: what the step-up and enrolment pages say to someone sent there by the original request's decision
ORIGINAL_DECIDE_STEP_UP_WHY = gettext_lazy("Deciding a request for the original DICOM may give someone else "
                                           "the diagnostic images: it asks for your second factor.")


@login_required
@require_http_methods(["GET", "POST"])
@policy.serves(Action.VIEW_ORG_DATA)
@asks_step_up(why=ORIGINAL_DECIDE_STEP_UP_WHY)  # after the switch page, as for sharing (approve and decline)
def original_request_decide(request: HttpRequest, originalrequest_id: UUID) -> HttpResponse:
    req = selectors.original_request_get(user=request.user, public_id=originalrequest_id)
    # another organization's request (a notice's or an e-mail's link): shown and decided once it is
    # the active one
    if (switch := switch_first(request, req, Action.DECIDE_ORIGINAL_REQUEST, then=request.path)) is not None:
        return switch
    if request.method == "POST":
        policy.require(request.user, Action.DECIDE_ORIGINAL_REQUEST, req, request=request,
                       facts=policy.decision_facts(request, request.user))
    # approving or declining asks for a recent second factor, as sharing does; whoever may decide
    # is asked on opening the page, before anything is typed (found by QA: approved with none)
    if ((request.method == "POST" or policy.can(request.user, Action.DECIDE_ORIGINAL_REQUEST, req,
                                                facts=policy.request_facts(request, request.user)))
            and (asked := step_up_first(request, organization_id=req.organization_id)) is not None):
        return asked
    form = OriginalDecisionForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.original_request_decide(
                    original_request=req, by=request.user, approve=form.cleaned_data["decision"] == "approve",
                    hours=form.cleaned_data.get("hours"), note=form.cleaned_data.get("note", ""), request=request)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Decision recorded; the requester was notified."))
                return redirect("sharing:my_shares")
    return render(request, "sharing/original_decide.html",
                  {"req": req, "form": form,
                   "can_decide": policy.can(request.user, Action.DECIDE_ORIGINAL_REQUEST, req,
                                            facts=policy.request_facts(request, request.user)),
                   "decidable": policy.original_request_decidable(req)},
                  status=400 if form.errors else 200)


@never_cache
@require_http_methods(["GET", "POST"])
def link_open(request: HttpRequest, token: str) -> HttpResponse:
    """Open a share link: identity-linked links need the named recipient signed in (with MFA where
    the template says); anonymous ones need the organization's switch on. A second factor, a
    not-before time, a use limit and lockout are checked here; every refusal is recorded.

    An anonymous link is used only by a POST: a GET that would use it shows a confirmation page
    and changes nothing (no use counted, no opening recorded, nothing in the session). Mail
    gateways (Safe Links, Mimecast, Proofpoint) fetch every URL in an e-mail before the recipient
    clicks; a GET that counted would use up a one-use link and record an opening nobody made.
    Identity-linked links open on a GET: a scanner is not the named recipient signed in."""
    link = services.share_link_get(token)
    user = request.user if request.user.is_authenticated else None
    if link is None:
        services.share_link_refused(link=None, reason=LinkRefusal.UNKNOWN, user=user, request=request)
        raise Http404
    refusal = services.share_link_refusal(link=link, user=user)
    if refusal == LinkRefusal.SIGN_IN:
        # said in words (a bare sign-in page told someone without an account nothing): sign in,
        # or, with no account, ask the sender for an invitation. Nothing is used or recorded.
        return render(request, "sharing/link_sign_in.html",
                      {"login_url": with_next("account_login", request.get_full_path())})
    if refusal is not None:
        services.share_link_refused(link=link, reason=refusal, user=user, request=request)
        return render(request, "sharing/link_refused.html", {"reason": refusal, "link": link},
                      status=_REFUSAL_STATUS.get(refusal, 403))
    passed = set(request.session.get(SECOND_FACTOR_SESSION_KEY, []))
    if link.second_factor != SecondFactor.NONE and link.pk not in passed:
        form = SecondFactorForm(request.POST or None, birth_date=link.second_factor == SecondFactor.BIRTH_DATE)
        if request.method == "POST" and form.is_valid():
            if services.share_link_check_second_factor(link=link, value=form.answer(), request=request):
                request.session[SECOND_FACTOR_SESSION_KEY] = sorted(passed | {link.pk})
            else:
                link.refresh_from_db()
                if link.locked_at is not None:
                    return render(request, "sharing/link_refused.html",
                                  {"reason": LinkRefusal.LOCKED, "link": link}, status=403)
                left = ShareLink.MAX_FAILED_ATTEMPTS - link.failed_attempts
                form.add_error("value", ngettext("That is not right. %(left)s try left before the link locks.",
                                                 "That is not right. %(left)s tries left before the link locks.",
                                                 left) % {"left": left})
        if link.pk not in set(request.session.get(SECOND_FACTOR_SESSION_KEY, [])):
            return render(request, "sharing/link_second_factor.html", {"form": form, "link": link},
                          status=400 if form.errors else 200)
    if link.anonymous and request.method != "POST":
        return render(request, "sharing/link_confirm.html", {"link": link})
    if not services.share_link_use(link=link, user=user, request=request):
        services.share_link_refused(link=link, reason=LinkRefusal.USED_UP, user=user, request=request)
        return render(request, "sharing/link_refused.html", {"reason": LinkRefusal.USED_UP, "link": link},
                      status=403)
    if link.anonymous:
        held = list(request.session.get(policy.LINK_SESSION_KEY, []))
        if link.pk not in held:
            request.session[policy.LINK_SESSION_KEY] = [*held, link.pk]
    request.session[OPENED_SESSION_KEY] = sorted({*request.session.get(OPENED_SESSION_KEY, []), link.grant_id})
    if user is not None and _lands_on_portal(request, link):
        return redirect("education:portal")
    return redirect("sharing:shared_case", case_id=link.grant.case.public_id)


def _lands_on_portal(request: HttpRequest, link: ShareLink) -> bool:
    """Where an opened link leads a signed-in recipient: the patient portal for a patient, where
    what was shared is listed; else the shared case. Only where they land: access stays the
    policy's (a patient is held to the portal by apps.accounts.middleware and to the education
    copy by ``policy``; nobody gains anything by landing on the portal).

    - a patient-only account reaches nothing else (apps.accounts.middleware);
    - whoever opens their own patient-education share (an account of no organization that
      accepted one sent to its e-mail address, a patient, staff of another organization): the
      portal lists it (bound to them by ``share_link_use``) with its download, and it gives no
      case page to land on (``policy.USE_CASE_GIVES``).
    """
    memberships = list(getattr(request, "my_memberships", None) or [])
    if is_patient_only(memberships):
        return True
    return not link.anonymous and link.grant.use_case in policy.use_cases_without(Action.VIEW_CASE)


#: the package (``?rendition=`` of the case download) that gives each rendition a share may offer
_CASE_PACKAGES = {Rendition.ORIGINAL: "original", Rendition.PREVIEW: "preview", Rendition.EDUCATION: "education"}


def _package_kinds(renditions: Iterable[str]) -> list[str]:
    """The downloads (``renditions.Kind`` values) the policy's allowed ``renditions`` give, in the
    order the study page offers them, by the study page's own rule (``SHARING_RENDITION``): the
    original's download gives its lossless copy too. Found by QA: after an approved request for
    the original, this page offered only the original's zip while the study page offered the
    lossless copy as well (which downloads, and counts)."""
    from apps.renditions.models import OFFER_ORDER, SHARING_RENDITION

    allowed = {r for r in renditions if r in _CASE_PACKAGES}
    return [str(kind) for kind in OFFER_ORDER if SHARING_RENDITION[kind] in allowed]


def _download_label(kind: str) -> str:
    """How "You may download" names the download ``kind`` (a ``_package_kinds`` value)."""
    return gettext_lazy("Lossless compressed DICOM") if kind == "lossless" else Rendition(kind).label


@policy.link_aware
@policy.serves(Action.VIEW_CASE)
@never_cache
@require_safe  # it only reads (and the switch page shows itself to a GET or HEAD only)
def shared_case(request: HttpRequest, case_id: UUID) -> HttpResponse:
    """A shared case as its recipient (or a link holder) sees it: what was shared, until when,
    which renditions they may take, and the way to ask for the original."""
    actor = policy.actor_for(request)
    if not getattr(actor, "is_authenticated", False) and not isinstance(actor, policy.LinkHolder):
        return redirect_to_login(request.get_full_path())
    case = selectors.case_get_shared(actor=actor, public_id=case_id, request=request)
    # a case of another of the person's organizations (a share between two of them, a notice's or
    # an e-mail's link, a tab of before a switch): shown once it is the active one, as its case
    # page is; nothing of it is read or recorded before. An outside recipient (no membership
    # there) is not asked: there is nothing to switch to
    if (switch := switch_first(request, case, Action.VIEW_CASE, then=request.get_full_path())) is not None:
        return switch
    # the page only reads (an opening is counted on the grant, which changes no decision): its
    # decisions share what the request read, its memberships and the actor's grants, read once
    facts = policy.request_facts(request, actor)
    grants = list(facts.grants_of(case.pk))
    services.grants_record_open_once(grants=grants, request=request, actor=policy._user_of(actor),
                                     actor_label=actor.label if isinstance(actor, policy.LinkHolder) else "")
    renditions = policy.allowed_renditions(actor, case, facts=facts)
    studies = []
    try:
        from apps.imaging.models import Study  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - imaging app not there yet
        Study = None
    if Study is not None:
        all_studies = list(Study.objects.filter(case=case).order_by("-study_date", "-created_at", "id"))
        studies = [s for s, may in zip(all_studies, policy.can_each(actor, Action.VIEW_IMAGES, all_studies,
                                                                    facts=facts), strict=True) if may]
    # what they may take of each study they see: a share naming some studies of the case gives no
    # zip of the whole case, yet each of its studies may be downloaded (the policy's answer for
    # each, so "You may download" says what the study's download gives, not "nothing")
    # (and of those, what the study has: a rendition its page says is not available is offered by
    # no button, its download refused)
    from apps.renditions.models import kinds_unavailable

    by_study = policy.allowed_renditions_each(actor, studies, facts=facts)
    missing = kinds_unavailable(s.pk for s in studies)
    for study, allowed in zip(studies, by_study, strict=True):
        study.download_kinds = [k for k in _package_kinds(allowed) if k not in missing.get(study.pk, ())]
    # no study of them has a lossless copy (found by review: the case's buttons offered one)
    lossless_none = bool(studies) and all("lossless" in missing.get(s.pk, ()) for s in studies)
    # why the original (and its lossless copy) is not offered, in the study page's words for the
    # policy's own reason (``download_refusals``, ``NOT_OFFERED_BECAUSE``), where nothing else on
    # the page says it: found by QA, an anonymous link's original gone silently once its
    # organization stopped allowing it there ("nothing (view only)" and no word why). What the
    # share does not give is said by "You may download", a download limit by its own line
    original_not_offered = None
    if studies and Rendition.ORIGINAL not in renditions and not any(Rendition.ORIGINAL in a for a in by_study):
        from apps.renditions.templatetags.renditions_tags import NOT_OFFERED_BECAUSE

        refusals = [r for r in policy.download_refusals(actor, [case, *studies],
                                                        rendition=Rendition.ORIGINAL, facts=facts)
                    if r not in (None, policy.GrantRefusal.NOT_INCLUDED, policy.GrantRefusal.NO_ACCESS,
                                 policy.GrantRefusal.LIMIT_REACHED)]
        if refusals:
            original_not_offered = NOT_OFFERED_BECAUSE.get(policy.first_refusal(refusals))
    # a page of them (a case may gather hundreds), with how many of how many and the others' pages
    studies = page_of(request, studies, size=SHARES_PAGE_SIZE, param="studies")
    # the grants under which the signed-in user may ask for the original (the policy's decision,
    # the one original_request_create makes): never an opened anonymous link's
    user = policy._user_of(actor)
    original_requestable = [g for g, may in zip(grants, policy.can_each(
        user, Action.REQUEST_ORIGINAL, grants, facts=policy.request_facts(request, user)), strict=True)
        if may] if user else []
    # and what became of their own newest request for it: waiting for a decision (then the policy
    # offers no second one, under any share of the case) or declined (offered again where the
    # policy allows); said only while they cannot download the original anyway (another share may
    # give it: then it is moot). Once for the case, not once a share: with two shares of it (a
    # consultant's and a tumor board's) the page showed two identical buttons, and the one waiting
    # under one share did not stop the other's
    asked = selectors.original_requests_latest(user=user, grants=grants) if user else {}
    pending = policy.pending_original_requests(user, [case.pk]).get(case.pk) if user else None
    latest = max(asked.values(), key=lambda r: (r.created_at, r.pk), default=None)
    moot = Rendition.ORIGINAL in renditions
    original_requests = []
    if pending is not None:
        if not moot:
            original_requests = [{"grant": pending.grant, "request": pending, "offer": False}]
    elif original_requestable:
        # one offer, under the share that lasts longest (an approval never outlasts its share)
        offered = max(original_requestable, key=lambda g: g.expires_at)
        original_requests = [{"grant": offered, "request": latest, "offer": True}]
    elif not moot and getattr(latest, "status", None) == OriginalRequestStatus.DECLINED:
        original_requests = [{"grant": latest.grant, "request": latest, "offer": False}]
    # a download button for each rendition the policy lets them take of the whole case (a link
    # holder has no study page to download from, so without these "You may download" was all)
    # (less the lossless copy when no study of the case has one, its originals received lossy:
    # that zip would hold the lossy originals, which the study pages do not offer as lossless;
    # a case of both keeps it, its zip saying which studies are lossy)
    downloads = [k for k in _package_kinds(renditions) if not (lossless_none and k == "lossless")] if studies else []
    # without the case's zip, each study's own downloads (beside it in the list)
    study_downloads = not downloads and any(by_study)
    limit_reached = any(g.over_download_limit for g in grants)  # as the policy refuses them
    return render(request, "sharing/shared_case.html", {
        "case": case, "grants": grants, "studies": studies,
        # what "You may download" names: the downloads offered, by the same rule as the buttons
        "download_labels": [_download_label(k) for k in _package_kinds(set(renditions).union(*by_study))
                            if not (lossless_none and k == "lossless")],
        "downloads": downloads, "study_downloads": study_downloads,
        "limit_reached": limit_reached and not downloads and not study_downloads,
        "original_not_offered": original_not_offered,
        "is_link_holder": isinstance(actor, policy.LinkHolder) and actor.user is None,
        "anonymous": any(g.is_anonymous for g in grants), "original_requests": original_requests,
        "recipient_kinds": RecipientKind})


@login_required
@require_http_methods(["GET", "POST"])
def sharing_policy_edit(request: HttpRequest) -> HttpResponse:
    """The active organization's sharing defaults and maxima (org admins)."""
    org = active_organization_or_404(request)
    policy.require(request.user, Action.MANAGE_ORGANIZATION, org, request=request)
    current = services.sharing_policy_for(org.pk)
    form = SharingPolicyForm(request.POST or None, template_settings=current.template_settings, initial={
        "anonymous_max_hours": current.anonymous_max_hours,
        "anonymous_download_limit": current.anonymous_download_limit,
        "anonymous_allow_original": current.anonymous_allow_original,
        "original_approval_max_hours": current.original_approval_max_hours})
    if request.method == "POST" and form.is_valid():
        services.sharing_policy_update(organization_id=org.pk, by=request.user, values=form.cleaned_data,
                                       template_settings=form.template_settings(), request=request)
        messages.success(request, _("Sharing settings saved."))
        return redirect("sharing:policy")
    return render(request, "sharing/policy.html", {"form": form, "organization": org},
                  status=400 if form.errors else 200)
