"""Reads for organizations and memberships. Every lookup by id goes through a selector that
answers 404 for rows the user may not see, whichever organization they belong to."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from apps.organizations.models import Membership, Organization

if TYPE_CHECKING:
    from apps.accounts.models import User


def memberships_of(*, user: User) -> list[Membership]:
    """The user's own active memberships, for the organization switcher: read once per request
    with the policy's (``policy.memberships_read``), which decides on the same rows."""
    from apps.sharing import policy

    if not user.is_authenticated:
        return []
    return policy.memberships_read(user)


def active_organization_or_404(request: HttpRequest) -> Organization:
    """The organization the user works in now (the header's switcher); 404 when they have none."""
    org = request.organization  # type: ignore[attr-defined]
    if not org:
        raise Http404
    return org


def organization_get(*, user: User, public_id: UUID) -> Organization:
    try:
        return Organization.objects.visible_to(user).get(public_id=public_id)
    except Organization.DoesNotExist:
        raise Http404 from None


def membership_get(*, user: User, public_id: UUID) -> Membership:
    try:
        return Membership.objects.visible_to(user).select_related("user", "organization").get(public_id=public_id)
    except Membership.DoesNotExist:
        raise Http404 from None


def member_list(*, user: User, organization: Organization) -> QuerySet[Membership]:
    """The organization's memberships (active first, by e-mail), for the members page to show a
    page of: a hospital has thousands."""
    return (Membership.objects.visible_to(user).for_org(organization.id)
            .select_related("user").order_by("-is_active", "user__email", "id"))


def member_count(*, user: User, organization: Organization) -> int:
    """How many memberships ``member_list`` holds, counted by the database."""
    return Membership.objects.visible_to(user).for_org(organization.id).count()
