"""``{% can_export_deidentified study as var %}``: whether the signed-in user may make
de-identified exports of this study (apps.sharing.policy decides)."""

from __future__ import annotations

from django import template

from apps.sharing import policy

register = template.Library()


@register.simple_tag(takes_context=True)
def can_export_deidentified(context, study) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    return policy.can(user, policy.Action.EXPORT_DEIDENTIFIED, study)
