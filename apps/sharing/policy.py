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
    VIEW_CASE = "view_case"                   # the case page: question, status, participants
    VIEW_IMAGES = "view_images"               # pixels in the viewer
    DOWNLOAD_PREVIEW = "download_preview"     # lossy, labelled previews
    DOWNLOAD_ORIGINAL = "download_original"   # the diagnostic original DICOM
    SHARE_CASE = "share_case"                 # grant others access
    MANAGE_CASE = "manage_case"               # edit, close, reopen, run tumor boards


_STAFF = {Action.VIEW_ORGANIZATION, Action.VIEW_ORG_DATA, Action.VIEW_MEMBERS}
_READER = {Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL,
           Action.SHARE_CASE, Action.MANAGE_CASE}

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    # Org admins run the organization; they see case status but not pixels (minimum necessary).
    Role.ORG_ADMIN: frozenset(_STAFF | {Action.MANAGE_MEMBERS, Action.MANAGE_ORGANIZATION, Action.VIEW_AUDIT,
                                        Action.VIEW_CASE, Action.MANAGE_CASE}),
    Role.RADIOLOGIST: frozenset(_STAFF | _READER),
    Role.CLINICIAN: frozenset(_STAFF | _READER),
    # Coordinators organize cases and boards: status, not pixels.
    Role.COORDINATOR: frozenset(_STAFF | {Action.VIEW_CASE, Action.MANAGE_CASE}),
    # Outsiders hold nothing organization-wide: only what a live Grant names.
    Role.EXTERNAL_CONSULTANT: frozenset({Action.VIEW_ORGANIZATION}),
    Role.PATIENT: frozenset({Action.VIEW_ORGANIZATION}),
}

#: what each grant permission lets its grantee do on the granted case. Any live grant also
#: shows the case page (VIEW_CASE).
PERMISSION_ACTIONS: dict[str, frozenset[Action]] = {
    "view": frozenset({Action.VIEW_CASE, Action.VIEW_IMAGES}),
    "download_preview": frozenset({Action.DOWNLOAD_PREVIEW}),
    "download_original": frozenset({Action.DOWNLOAD_ORIGINAL}),
    "reshare": frozenset({Action.SHARE_CASE}),
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


def granted_case_ids(user: User) -> QuerySet:
    """A subquery of the ids of cases on which ``user`` holds a live grant."""
    from apps.sharing.models import Grant

    if not user.is_authenticated or not user.is_active:
        return Grant.objects.none().values("case_id")
    return Grant.objects.live().filter(grantee=user).values("case_id")


def _case_id_of(obj: object) -> int | None:
    from apps.cases.models import Case

    if isinstance(obj, Case):
        return obj.pk
    return getattr(obj, "case_id", None)


def _grant_allows(user: User, action: Action, case_id: int) -> bool:
    """A live grant to ``user`` on the case covers ``action``. Read on every call: no cache, so
    a revocation or expiry takes effect on the very next request."""
    from apps.sharing.models import Grant

    if not user.is_authenticated or not user.is_active:
        return False
    held = Grant.objects.live().filter(grantee=user, case_id=case_id).values_list("permissions", flat=True)
    for permissions in held:
        if action == Action.VIEW_CASE:
            return True
        if any(action in PERMISSION_ACTIONS.get(p, ()) for p in permissions):
            return True
    return False


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
    """True when ``actor`` may do ``action`` on ``obj``. The only function that says yes.

    First the actor's role in the object's organization; then, for objects of a case, a live
    grant on that case."""
    action = Action(action)
    role = role_in(actor, _org_id_of(obj))
    if role is not None and action in ROLE_ACTIONS[role]:
        return True
    case_id = _case_id_of(obj)
    return case_id is not None and _grant_allows(actor, action, case_id)


def require(actor: User, action: Action | str, obj: object, *, request: HttpRequest | None = None) -> None:
    """Raise PermissionDenied (and record the denial) unless ``can(actor, action, obj)``."""
    if can(actor, action, obj):
        return
    from apps.audit.services import record

    record(action="access.denied", actor=actor, organization_id=_org_id_of(obj), target=obj,
           outcome="denied", request=request, details={"wanted": str(action)})
    raise PermissionDenied
