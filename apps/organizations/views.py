"""Organization pages: thin views that parse, call a selector or service, and render."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.mfa import asks_step_up, require_recent_otp, step_up_first
from apps.core.pagination import page_of
from apps.core.redirects import next_url
from apps.organizations import selectors, services
from apps.organizations.forms import MemberAddForm, MembershipForm, OrganizationPolicyForm
from apps.organizations.selectors import active_organization_or_404
from apps.organizations.switching import switch_first
from apps.sharing import policy
from apps.sharing.policy import Action

#: memberships per page of the members page
MEMBERS_PAGE_SIZE = 50


@login_required
@require_POST
def organization_switch(request: HttpRequest, organization_id: UUID) -> HttpResponse:
    org = selectors.organization_get(user=request.user, public_id=organization_id)
    try:
        services.organization_switch(request=request, organization=org)
    except ValidationError:
        raise Http404 from None
    messages.success(request, _("You are now working in %(org)s.") % {"org": org.name})
    return redirect(next_url(request))


def _allowed_before_step_up(action: Action) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorator, above ``require_recent_otp``: someone whose role in the active organization may
    not ``action`` is refused (403, recorded by the policy) before being sent to pass or set up a
    second factor, which the page would refuse them after anyway (found by QA: a radiologist was
    walked through enrolling an authenticator to reach the members page, then refused). For pages
    of the active organization only: a page of one membership may belong to another of the
    person's organizations, whose switch page (``switch_first``) comes first there."""
    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            policy.require(request.user, action, active_organization_or_404(request), request=request)
            return view(request, *args, **kwargs)
        return wrapped
    return decorate


@login_required
@require_http_methods(["GET", "POST"])
@_allowed_before_step_up(Action.MANAGE_MEMBERS)
@require_recent_otp  # adding people with a role (an org admin, say): a recent second factor, as for invitations
def member_list(request: HttpRequest) -> HttpResponse:
    org = active_organization_or_404(request)
    policy.require(request.user, Action.MANAGE_MEMBERS, org, request=request)
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership, created = services.membership_add(
                organization=org, by=request.user, email=form.cleaned_data["email"],
                role=form.cleaned_data["role"], full_name=form.cleaned_data["full_name"], request=request,
            )
        except ValidationError as exc:
            form.add_error("email", exc)
        else:
            if created and services.password_link_send(user=membership.user, request=request):
                # The new member sets their own password through a one-time link; the e-mail
                # carries that link and nothing about patients.
                messages.success(request, _("%(email)s was added and sent a link to set a password.")
                                 % {"email": membership.user.email})
            elif created:
                messages.warning(request, _("%(email)s was added, but the e-mail with a link to set a password "
                                            "could not be sent. Once e-mail works again, they can ask for one "
                                            "with “Forgot your password?” on the sign-in page.")
                                 % {"email": membership.user.email})
            else:
                messages.success(request, _("%(email)s was added.") % {"email": membership.user.email})
            return redirect("organizations:members")
    members = page_of(request, selectors.member_list(user=request.user, organization=org), size=MEMBERS_PAGE_SIZE)
    return render(request, "organizations/member_list.html",
                  {"organization": org, "members": members, "page": members, "form": form},
                  status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
@asks_step_up()  # roles and deactivation: a recent second factor, as for invitations
def membership_edit(request: HttpRequest, membership_id: UUID) -> HttpResponse:
    membership = selectors.membership_get(user=request.user, public_id=membership_id)
    # a membership of another of the person's organizations: changed once it is the active one;
    # the switch page, then a role that may not, come before the step-up (neither acts)
    if (switch := switch_first(request, membership, Action.MANAGE_MEMBERS, then=request.path)) is not None:
        return switch
    policy.require(request.user, Action.MANAGE_MEMBERS, membership.organization, request=request)
    if (asked := step_up_first(request, organization_id=membership.organization_id)) is not None:
        return asked
    form = MembershipForm(request.POST or None, instance=membership)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_update(membership=membership, by=request.user,
                                       role=form.cleaned_data["role"],
                                       is_active=form.cleaned_data["is_active"], request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Membership of %(email)s saved.") % {"email": membership.user.email})
            return redirect("organizations:members")
    return render(request, "organizations/membership_edit.html", {
        "membership": membership, "form": form,
        "can_reset_mfa": policy.second_factor_reset_allowed(request.user, membership.user),
    }, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
@_allowed_before_step_up(Action.MANAGE_ORGANIZATION)
@require_recent_otp  # second factor, anonymous links, sign-in: a recent second factor
def organization_settings(request: HttpRequest) -> HttpResponse:
    org = active_organization_or_404(request)
    policy.require(request.user, Action.MANAGE_ORGANIZATION, org, request=request)
    form = OrganizationPolicyForm(request.POST or None, instance=org)
    if request.method == "POST":
        if form.is_valid():
            org.refresh_from_db()
            services.organization_update_policy(organization=org, by=request.user,
                                                values=form.cleaned_data, request=request)
            messages.success(request, _("Organization settings saved."))
            return redirect("organizations:settings")
    return render(request, "organizations/settings.html", {"organization": org, "form": form},
                  status=400 if form.errors else 200)
