from __future__ import annotations

from django import template

from apps.sharing import policy
from apps.sharing.policy import Action

register = template.Library()


@register.simple_tag(takes_context=True)
def can_view_images(context, study) -> bool:
    """Whether this request's actor may open ``study`` in the viewer (the policy decides)."""
    request = context.get("request")
    if request is None or study is None:
        return False
    return policy.can(policy.actor_for(request), Action.VIEW_IMAGES, study)
