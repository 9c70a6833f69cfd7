from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from apps.organizations.models import Membership
from apps.organizations.selectors import memberships_of
from apps.organizations.services import ACTIVE_ORG_SESSION_KEY


def _active_membership(request: HttpRequest) -> Membership | None:
    """The membership the user works in: the one picked in the switcher, else their first."""
    memberships = request.my_memberships  # type: ignore[attr-defined]
    if not memberships:
        return None
    wanted = request.session.get(ACTIVE_ORG_SESSION_KEY)
    for m in memberships:
        if str(m.organization.public_id) == wanted:
            return m
    return memberships[0]


class ActiveOrganizationMiddleware:
    """Sets request.my_memberships, request.membership and request.organization (lazily)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.my_memberships = SimpleLazyObject(lambda: memberships_of(user=request.user))  # type: ignore[attr-defined]
        request.membership = SimpleLazyObject(lambda: _active_membership(request))  # type: ignore[attr-defined]
        request.organization = SimpleLazyObject(  # type: ignore[attr-defined]
            lambda: request.membership.organization if request.membership else None  # type: ignore[attr-defined]
        )
        return self.get_response(request)
