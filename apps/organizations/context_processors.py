from __future__ import annotations

from django.http import HttpRequest

from apps.sharing import policy
from apps.sharing.policy import Action

#: what the navigation asks the policy about the active organization
NAV_ACTIONS = (Action.UPLOAD_STUDY, Action.MANAGE_MEMBERS, Action.MANAGE_ORGANIZATION, Action.VIEW_AUDIT)


def organizations(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(request, "membership"):
        return {}
    membership = request.membership  # type: ignore[attr-defined]
    org = membership.organization if membership else None
    # the navigation's links, decided at once on the memberships the request read (``my_memberships``)
    may = (policy.can_actions(user, NAV_ACTIONS, org, facts=policy.request_facts(request, user)) if org
           else dict.fromkeys(NAV_ACTIONS, False))
    return {
        "my_memberships": request.my_memberships,  # type: ignore[attr-defined]
        "active_membership": membership,
        "active_organization": org,
        "can_upload": may[Action.UPLOAD_STUDY],
        "can_manage_members": may[Action.MANAGE_MEMBERS],
        "can_manage_organization": may[Action.MANAGE_ORGANIZATION],
        "can_view_audit": may[Action.VIEW_AUDIT],
        # called by the template only where it may draw the link (not in a patient's navigation)
        "has_shares_page": lambda: policy.has_shares_page(
            user, roles=[m.role for m in request.my_memberships]),  # type: ignore[attr-defined]
    }
