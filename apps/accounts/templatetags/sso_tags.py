"""The sign-in page's "Continue with <organization>" (templates/account/login.html)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def remembered_sso(context: Any) -> Any:
    """The single sign-on of the organization this browser last signed in with
    (``sso.remembered_organization``), or None."""
    from apps.accounts.sso import remembered_organization

    request = context.get("request")
    return remembered_organization(request) if request is not None else None
