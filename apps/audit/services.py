"""``record(...)``: the one entry point through which every feature writes the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist

from apps.audit.actions import MEMBER_ACCOUNT_ACTIONS
from apps.audit.models import ActorType, AuditEvent

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.organizations.models import Organization


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _link_ref(link: Any, actor_label: str) -> uuid.UUID | None:
    """The share link's public id: from ``link`` (a ShareLink or a UUID), or from a label of the
    form ``link:<uuid>`` that the sharing services write."""
    if link is not None:
        value = getattr(link, "public_id", link)
        try:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            return None
    if actor_label.startswith("link:"):
        try:
            return uuid.UUID(actor_label[5:])
        except ValueError:
            return None
    return None


def _member_org_ids(user: Any) -> list[int]:
    """The organizations whose trail records ``user``'s account events: where they are an active
    member, and where their membership ended within ``LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS`` (a
    leaver's later sign-in, failed sign-in or lockout is the business of the organization that
    ended it; in the global chain no organization would see it). A membership that ended at a
    time not known (``deactivated_at`` None: ended before the time was kept, with no record of
    it in the trail) is not recent: nothing of the person reaches that organization any more,
    since they may have left it years ago and work elsewhere (found by a reviewer)."""
    from datetime import timedelta

    from django.conf import settings
    from django.db.models import Q
    from django.utils import timezone

    from apps.organizations.models import Membership

    since = timezone.now() - timedelta(days=settings.LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS)
    return list(Membership.objects.filter(Q(is_active=True) | Q(is_active=False, deactivated_at__gte=since),
                                          user_id=user.pk)
                .order_by("organization_id").values_list("organization_id", flat=True))


def _target_type(target) -> str:
    """The model's name ("case", "grant"); a lazily loaded user (request.user) is a "user"."""
    if target is None:
        return ""
    meta = getattr(target, "_meta", None)
    return meta.model_name if meta is not None else type(target).__name__.lower()


def _foreign_key(obj: Any, name: str) -> Any:
    """The foreign key (or one-to-one) field ``name`` of ``obj``'s model, None when it has none."""
    try:
        field = obj._meta.get_field(name)
    except (AttributeError, FieldDoesNotExist):
        return None
    return field if field.concrete and (field.many_to_one or field.one_to_one) else None


def _related_ref(obj: Any, name: str) -> uuid.UUID | None:
    """The public id of the row ``obj``'s foreign key ``name`` points to: from that row when it
    is loaded already (``select_related``), else read alone (its public id only); None when
    ``obj`` has no such key, or it points nowhere."""
    field = _foreign_key(obj, name)
    if field is None:
        return None
    if field.is_cached(obj):
        return getattr(field.get_cached_value(obj), "public_id", None)
    pk = getattr(obj, field.attname, None)
    if pk is None:
        return None
    return field.related_model._base_manager.filter(pk=pk).values_list("public_id", flat=True).first()


def _refs_of(target: Any, *, case_known: bool = False) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """(case, study): the public ids of the case and the study ``target`` is, or belongs to: a
    case; a study (and its case); a row of a case (a grant, a note, an upload...); a row of a study
    (a series, an image, a rendition or one of its files, an export: its study and that study's
    case). Nothing is read that the caller loaded already (``select_related``), else one query.
    ``case_known``: the caller names the case, only the study is wanted (the case comes back None)."""
    if getattr(target, "_meta", None) is None:
        return None, None
    if type(target).__name__ == "Case":
        return (None if case_known else target.public_id), None
    if type(target).__name__ == "Study":
        return (None if case_known else _related_ref(target, "case")), target.public_id
    if _foreign_key(target, "case") is not None:
        return (None if case_known else _related_ref(target, "case")), _related_ref(target, "study")
    field = _foreign_key(target, "study")
    if field is None:
        return None, None
    if field.is_cached(target):
        study = field.get_cached_value(target)
        if study is None:
            return None, None
        return (None if case_known else _related_ref(study, "case")), study.public_id
    if getattr(target, field.attname) is None:
        return None, None
    # the study's and its case's public ids in one query
    refs = field.related_model._base_manager.filter(pk=getattr(target, field.attname)).values_list(
        "case__public_id", "public_id").first()
    return refs if refs is not None else (None, None)


def record(*, action: str, actor: Any = None, organization: Organization | None = None,
           organization_id: int | None = None, target: Any = None, outcome: str = "allowed",
           request: HttpRequest | None = None, details: dict[str, Any] | None = None,
           actor_label: str = "", case: Any = None, study: Any = None,
           actor_type: str | None = None, link: Any = None) -> AuditEvent:
    """Write one audit event, chained to its organization's previous event.

    ``details`` must hold ids and figures only, never patient data. ``case`` and ``study`` (model
    instances) index the event for "who saw this case/study"; when omitted they are taken from
    ``target`` if it is, or belongs to, a case or study. ``actor_type`` (user, link, anonymous,
    system) is derived when omitted: a signed-in actor is a user, a label starting with "link" or
    a ``link`` (ShareLink or its public id) is a link holder, another actor is anonymous, no actor
    is the system. Action names: apps.audit.actions.

    An account event (``actions.MEMBER_ACCOUNT_ACTIONS``) recorded without an organization is
    written once into the chain of each organization its person (the target when it is a user,
    else the actor) is an active member of, or was until lately (``_member_org_ids``), and returns
    the first; with no such membership it goes into the global chain (``manage.py audit_global``
    prints it)."""
    org_ids: list[int] = []
    if organization is None and organization_id is None and action in MEMBER_ACCOUNT_ACTIONS:
        # an account event: into the chain of each organization the person belongs to, the same
        # event in each (worked out once below; its refs from the target alone, as ever)
        subject = target if type(target).__name__ == "User" else actor
        org_ids = _member_org_ids(subject) if getattr(subject, "pk", None) else []
        if org_ids:
            case = study = None
    # the refs that index the event: named by the caller, else those of the study named, else
    # those of the target (a frame's image belongs to its study and that study's case)
    case_ref, study_ref = getattr(case, "public_id", None), getattr(study, "public_id", None)
    if case is None and study is not None:
        case_ref = _related_ref(study, "case")
    if target is not None and (case_ref is None or study is None):
        target_case_ref, target_study_ref = _refs_of(target, case_known=case_ref is not None)
        case_ref = case_ref or target_case_ref
        study_ref = study_ref or target_study_ref
    user = actor if getattr(actor, "is_authenticated", False) else None
    if user is None and actor is not None and getattr(actor, "user", None) is not None:
        user = actor.user if getattr(actor.user, "is_authenticated", False) else None  # a LinkHolder
    link_ref = _link_ref(link, actor_label)
    if actor_type is None:
        if link_ref is not None or actor_label.startswith("link"):
            actor_type = ActorType.LINK
        elif user is not None:
            actor_type = ActorType.USER
        elif actor is not None or (actor_label and not actor_label.startswith("system")):
            actor_type = ActorType.ANONYMOUS  # a visitor, or someone named only by the label
        else:
            actor_type = ActorType.SYSTEM
    if not actor_label:
        actor_label = user.email if user is not None else \
            "anonymous" if actor_type == ActorType.ANONYMOUS else actor_type
    target_id = ""
    if target is not None:
        target_id = str(getattr(target, "public_id", None) or getattr(target, "pk", ""))
    fields = dict(
        actor=user,
        actor_type=actor_type,
        actor_label=actor_label[:200],
        link_ref=link_ref,
        action=action,
        target_type=_target_type(target),
        target_id=target_id[:64],
        case_ref=case_ref,
        study_ref=study_ref,
        outcome=outcome,
        ip=_client_ip(request) if request is not None else None,
        # a header may hold a NUL, which PostgreSQL cannot store (the event would be lost)
        user_agent=(request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:300] if request is not None else ""),
        details=details or {},
    )
    if org_ids:
        events = [AuditEvent.objects.create(organization_id=org_id, **fields) for org_id in org_ids]
        return events[0]
    return AuditEvent.objects.create(
        organization_id=organization.pk if organization is not None else organization_id, **fields)


#: denials raised inside an atomic block during the current request or task (see denials_kept)
_pending_denials: ContextVar[list[BaseException] | None] = ContextVar("lightbox_pending_denials", default=None)


def record_hidden_refusal(*, user: Any, model: type, public_id: Any, request: HttpRequest | None,
                          wanted: str = "view_case") -> None:
    """A request for an object its tenant-scoped queryset hid from ``user`` (the answer stays
    404, so that outsiders cannot probe which ids exist): when the object exists (a case, a study,
    a case's attachment, a tumor board: ``model``, by ``public_id``), the refusal is recorded in
    its organization's trail (a participant clicking after the board ended, a report downloaded
    after the share was revoked, a closed case...)."""
    obj = model.objects.filter(public_id=public_id).first()
    if obj is not None and getattr(user, "is_authenticated", False):
        record(action="access.denied", actor=user, organization_id=obj.organization_id, target=obj,
               outcome="denied", request=request, details={"wanted": wanted})


def denial_track(exc: BaseException) -> None:
    """Called by the policy for a denial recorded inside an atomic block: kept until the request
    or task ends, when ``denials_kept`` makes sure it is still recorded. Outside a request or a
    task (a shell, a test calling a service) nothing is kept."""
    pending = _pending_denials.get()
    if pending is not None:
        pending.append(exc)


@contextmanager
def denials_kept() -> Iterator[None]:
    """Around a whole request (apps.audit.middleware) or task (the Celery signals in apps.audit.apps):
    at the end, when every atomic block has exited, each denial recorded in one that rolled back is
    recorded again, once. Whether the exception reached the top or a view caught it and answered 403
    itself does not matter."""
    token = _pending_denials.set([])
    try:
        yield
    finally:
        pending = _pending_denials.get() or []
        _pending_denials.reset(token)
        for exc in pending:
            denial_ensure_recorded(exc)


def denial_ensure_recorded(exc: BaseException) -> AuditEvent | None:
    """Make sure the denial ``exc`` carries (a ``policy.DeniedByPolicy``; anything else is
    ignored) is in the trail: if the transaction it was recorded in rolled back, record it again
    (the exception then carries the new event, so a second call finds it). Call it only after
    the atomic blocks around the refusal have exited."""
    audit = getattr(exc, "audit", None)
    if not audit:
        return None
    event = exc.event  # type: ignore[attr-defined]
    if event is not None and AuditEvent.objects.filter(pk=event.pk, hash=event.hash).exists():
        return event
    exc.event = record(**audit)  # type: ignore[attr-defined]
    return exc.event  # type: ignore[attr-defined]
