"""The page that asks someone in several organizations to switch before showing another one's object.

Someone may be a member of several organizations and works in one at a time (the header's
switcher). A link to an object of another of their organizations (a notice's, an e-mail's, a
bookmark, a tab opened before a switch) opens neither under the active organization's header nor
with its staff actions: ``switch_first`` answers with a page that names the object's organization
and nothing of the object, whose button switches (the switch view) and continues to the page. The
decision is the policy's (``policy.organization_to_switch_to``; a staff-side action sent there is
refused by ``policy.ACTIVE_ORGANIZATION_ACTIONS``). Someone who is not a member of the object's
organization (an outside consultant holding a share) is not asked: there is nothing to switch to.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.sharing import policy
from apps.sharing.policy import Action


def switch_first(request: HttpRequest, obj: object, action: Action, *, then: str) -> HttpResponse | None:
    """The page that asks to switch to ``obj``'s organization (one of the person's others than
    the active one: ``policy.organization_to_switch_to``) before it is shown or acted on, its
    button continuing to ``then``; None when ``obj`` is the active organization's (or of one they
    are not a member of). A request that would change something (a POST: a form sent from a page
    of before the switch, another tab) is refused and the refusal recorded: ``action``, the view's
    staff-side action, is decided on the active organization's objects only
    (``policy.ACTIVE_ORGANIZATION_ACTIONS``). Views call it before reading or deciding anything
    else of ``obj``."""
    organization = policy.organization_to_switch_to(request, obj)
    if organization is None:
        return None
    status = 200
    if request.method not in ("GET", "HEAD"):
        if action not in policy.ACTIVE_ORGANIZATION_ACTIONS:
            raise ValueError(f"switch_first: {action} is not decided on the active organization's objects only")
        try:
            policy.require(request.user, action, obj, request=request,
                           facts=policy.decision_facts(request, request.user))
        except PermissionDenied:
            status = 403
    return render(request, "organizations/switch_needed.html",
                  {"organization": organization, "then": then}, status=status)
