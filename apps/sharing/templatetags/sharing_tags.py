"""``{% can_share obj as var %}``: whether the signed-in user may share this case or study (and it
is on an open case), decided by apps.sharing.policy."""

from __future__ import annotations

from django import template

from apps.sharing import policy

register = template.Library()


@register.simple_tag(takes_context=True)
def can_share(context, obj) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    case = obj if type(obj).__name__ == "Case" else getattr(obj, "case", None)
    if user is None or not user.is_authenticated or case is None or not case.is_open:
        return False
    return policy.can(user, policy.Action.SHARE_CASE, obj)
