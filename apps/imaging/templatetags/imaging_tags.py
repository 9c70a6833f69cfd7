from __future__ import annotations

from django import template

from apps.sharing import policy
from apps.sharing.policy import Action

register = template.Library()


@register.simple_tag(takes_context=True)
def can_upload_studies(context) -> bool:
    """For the navigation: may the user upload studies into the active organization?"""
    request = context.get("request")
    org = getattr(request, "organization", None) if request is not None else None
    user = getattr(request, "user", None)
    return bool(org) and user is not None and user.is_authenticated and policy.can(user, Action.UPLOAD_STUDY, org)
