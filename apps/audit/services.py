"""``record(...)``: the one entry point through which every feature writes the audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apps.audit.models import AuditEvent

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.organizations.models import Organization


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def record(*, action: str, actor: Any = None, organization: Organization | None = None,
           organization_id: int | None = None, target: Any = None, outcome: str = "allowed",
           request: HttpRequest | None = None, details: dict[str, Any] | None = None,
           actor_label: str = "", case: Any = None, study: Any = None) -> AuditEvent:
    """Write one audit event. ``details`` must hold ids and figures only, never patient data.

    ``case`` and ``study`` (model instances) index the event for "who saw this case/study";
    when omitted they are taken from ``target`` if it is, or belongs to, a case or study."""
    if case is None and target is not None:
        case = target if type(target).__name__ == "Case" else getattr(target, "case", None)
    if study is None and target is not None and type(target).__name__ == "Study":
        study = target
    user = actor if getattr(actor, "is_authenticated", False) else None
    target_id = ""
    if target is not None:
        target_id = str(getattr(target, "public_id", None) or getattr(target, "pk", ""))
    return AuditEvent.objects.create(
        organization_id=organization.pk if organization is not None else organization_id,
        actor=user,
        actor_label=actor_label or ("" if user else "anonymous" if actor is not None else "system"),
        action=action,
        target_type=type(target).__name__.lower() if target is not None else "",
        target_id=target_id,
        case_ref=getattr(case, "public_id", None),
        study_ref=getattr(study, "public_id", None),
        outcome=outcome,
        ip=_client_ip(request) if request is not None else None,
        user_agent=(request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else ""),
        details=details or {},
    )
