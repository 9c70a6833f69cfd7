from __future__ import annotations

from django import template

from apps.sharing.models import Permission

register = template.Library()


@register.filter
def permission_labels(permissions: list[str]) -> str:
    """["view", "download_preview"] -> "View, Download preview" (translated)."""
    labels = dict(Permission.choices)
    return ", ".join(str(labels.get(p, p)) for p in permissions or ())
