from __future__ import annotations

from django import template

from apps.audit import actions
from apps.sharing.models import Permission
from apps.sharing.usecases import Rendition

register = template.Library()


@register.filter
def permission_labels(permissions: list[str]) -> str:
    """["view", "download_preview"] -> "View, Download preview" (translated)."""
    labels = dict(Permission.choices)
    return ", ".join(str(labels.get(p, p)) for p in permissions or ())


@register.filter
def rendition_labels(renditions: list[str]) -> str:
    """["original", "preview"] -> "Original DICOM, Compressed preview" (translated)."""
    labels = dict(Rendition.choices)
    return ", ".join(str(labels.get(r, r)) for r in renditions or ())


@register.filter
def action_label(action: str) -> str:
    """An audit action's label ("case.viewed" -> "Case viewed", translated)."""
    return actions.label(action)


@register.filter
def event_actor(event) -> tuple[str, str]:
    """(name, reference) of who an audit event without a person names: "System", "Share link"
    and its id, translated (the stored label is a code such as "system" or "link:<uuid>")."""
    return actions.actor_label(event.actor_type, event.actor_label)
