"""The one place that says yes or no.

Every access decision in Lightbox is ``can(actor, action, obj)``: pages, the API, downloads and
every later interface call it (or ``require``, which raises and records the denial); none of
them re-implements a rule. Roles map to actions through ``ROLE_ACTIONS``, a table, so one
table-driven test covers every pair. Querysets ask ``org_ids_where`` which organizations' rows a
user may see, so list scoping and object checks come from the same table.

Security contract:
- a user holds an action in an organization only through an *active* membership there whose
  role grants it; an inactive user holds nothing;
- an object belongs to exactly one organization (``_org_id_of``), and rights in one organization
  never reach objects of another;
- every denial raised by ``require`` is recorded in the audit log.

External consultants and patients hold no organization-wide data rights: they will see only
what a Grant names (the sharing issue adds grants and link tokens to this module).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from apps.organizations.models import Membership, Organization, Role

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.accounts.models import User


class Action(StrEnum):
    VIEW_ORGANIZATION = "view_organization"   # be in it: switch to it, see its name
    VIEW_ORG_DATA = "view_org_data"           # see the organization's own records (staff)
    VIEW_MEMBERS = "view_members"             # see who else is a member
    MANAGE_MEMBERS = "manage_members"         # add members, change roles, deactivate
    MANAGE_ORGANIZATION = "manage_organization"  # edit the organization's policy settings
    VIEW_AUDIT = "view_audit"                 # read the organization's audit trail


_STAFF = {Action.VIEW_ORGANIZATION, Action.VIEW_ORG_DATA, Action.VIEW_MEMBERS}

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.ORG_ADMIN: frozenset(_STAFF | {Action.MANAGE_MEMBERS, Action.MANAGE_ORGANIZATION, Action.VIEW_AUDIT}),
    Role.RADIOLOGIST: frozenset(_STAFF),
    Role.CLINICIAN: frozenset(_STAFF),
    Role.COORDINATOR: frozenset(_STAFF),
    Role.EXTERNAL_CONSULTANT: frozenset({Action.VIEW_ORGANIZATION}),
    Role.PATIENT: frozenset({Action.VIEW_ORGANIZATION}),
}


def roles_with(action: Action | str) -> list[str]:
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]


def org_ids_where(user: User, action: Action | str) -> QuerySet[Membership]:
    """A subquery of the organization ids in which ``user`` holds ``action``."""
    if not user.is_authenticated or not user.is_active:
        return Membership.objects.none().values("organization_id")
    return Membership.objects.filter(
        user=user, is_active=True, role__in=roles_with(action),
    ).values("organization_id")


def _org_id_of(obj: object) -> int:
    if isinstance(obj, Organization):
        return obj.pk
    org_id = getattr(obj, "organization_id", None)
    if org_id is None:
        raise TypeError(f"policy cannot place {type(obj).__name__} in an organization")
    return org_id


def role_in(user: User, organization_id: int) -> str | None:
    if not user.is_authenticated or not user.is_active:
        return None
    return (
        Membership.objects.filter(user=user, organization_id=organization_id, is_active=True)
        .values_list("role", flat=True).first()
    )


def can(actor: User, action: Action | str, obj: object) -> bool:
    """True when ``actor`` may do ``action`` on ``obj``. The only function that says yes."""
    role = role_in(actor, _org_id_of(obj))
    return role is not None and Action(action) in ROLE_ACTIONS[role]


def require(actor: User, action: Action | str, obj: object, *, request: HttpRequest | None = None) -> None:
    """Raise PermissionDenied (and record the denial) unless ``can(actor, action, obj)``."""
    if can(actor, action, obj):
        return
    from apps.audit.services import record

    record(action="access.denied", actor=actor, organization_id=_org_id_of(obj), target=obj,
           outcome="denied", request=request, details={"wanted": str(action)})
    raise PermissionDenied
