"""The one tenant-scoping mechanism. Every organization-scoped model's manager is built from
``OrgScopedQuerySet``; views reach rows only through ``visible_to(user)`` and tasks through
``for_org(org_id)``. A forgotten filter is then a bug in one place, not fifty.

Which roles see which model is not decided here: each queryset names the policy action that
makes its rows visible (``visible_action``), and ``apps.sharing.policy`` says which roles hold
it. tests/test_scoping.py discovers every subclass and checks it across tenants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, TypeVar

from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from apps.accounts.models import User

M = TypeVar("M", bound=models.Model)


class OrgScopedQuerySet(models.QuerySet[M]):
    #: path from the model to its Organization ("organization", "case__organization", ...)
    org_lookup: ClassVar[str] = "organization"
    #: the policy action (apps.sharing.policy.Action) that lets a member see these rows
    visible_action: ClassVar[str] = "view_org_data"

    def for_org(self, org_id: int) -> OrgScopedQuerySet[M]:
        """Rows of one organization, for tasks and admin code that has no user at hand."""
        return self.filter(**{self.org_lookup: org_id})

    def visible_to(self, user: User | None) -> OrgScopedQuerySet[M]:
        """Rows this user may see; rows of other organizations are never among them."""
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(self.visibility(user))

    def visibility(self, user: User) -> Q:
        """The filter behind ``visible_to`` for an active, signed-in user: members holding
        ``visible_action`` in the row's organization. Subclasses widen it (``super() | Q(...)``)."""
        from apps.sharing import policy

        return Q(**{f"{self.org_lookup}__in": policy.org_ids_where(user, self.visible_action)})


class CaseLinkedQuerySet(OrgScopedQuerySet[M]):
    """Rows of a case (the case itself, its notes, studies, renditions ...): seen by members
    holding ``visible_action`` in the organization, or by anyone a live grant on that case names
    (apps.sharing.policy decides both)."""

    visible_action: ClassVar[str] = "view_case"
    #: path from the model to its case's id ("case_id"; "id" for Case itself)
    case_lookup: ClassVar[str] = "case_id"

    def visibility(self, user: User) -> Q:
        from apps.sharing import policy

        return super().visibility(user) | Q(**{f"{self.case_lookup}__in": policy.granted_case_ids(user)})


class WholeCaseQuerySet(CaseLinkedQuerySet):
    """Rows of a case tied to no one study of it (uploads, ingest jobs and their per-file
    reports, which can span several; a case's reports and attachments): grantees see them only
    through a grant on the whole case, never through one that names some of its studies."""

    def visibility(self, user: User) -> Q:
        from apps.sharing import policy

        members = super(CaseLinkedQuerySet, self).visibility(user)
        return members | Q(**{f"{self.case_lookup}__in": policy.granted_case_ids(user, whole_case=True)})


def org_scoped_models() -> list[type[models.Model]]:
    """Every installed model whose default manager is tenant-scoped."""
    from django.apps import apps

    return [
        m for m in apps.get_models()
        if issubclass(getattr(m._default_manager, "_queryset_class", object), OrgScopedQuerySet)
    ]
