from __future__ import annotations

from django.http import HttpRequest

from apps.sharing import policy
from apps.sharing.policy import Action


def organizations(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(request, "membership"):
        return {}
    membership = request.membership  # type: ignore[attr-defined]
    org = membership.organization if membership else None
    return {
        "my_memberships": request.my_memberships,  # type: ignore[attr-defined]
        "active_membership": membership,
        "active_organization": org,
        "can_manage_members": bool(org) and policy.can(user, Action.MANAGE_MEMBERS, org),
        "can_manage_organization": bool(org) and policy.can(user, Action.MANAGE_ORGANIZATION, org),
        "can_view_audit": bool(org) and policy.can(user, Action.VIEW_AUDIT, org),
    }
