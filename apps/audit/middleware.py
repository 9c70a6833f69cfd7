"""Denials that outlive a rollback (see ``apps.sharing.policy.DeniedByPolicy``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.audit.services import denials_kept


class DenialAuditMiddleware:
    """Runs the whole request inside ``denials_kept``: when the response is ready every atomic
    block of the view has exited, and a policy denial that one of them rolled back (the refused
    service raised inside its own ``transaction.atomic``) is recorded again, exactly once. This
    covers an exception that reaches Django's 403 handler, DRF's exception handler, and a view
    that catches PermissionDenied itself. ATOMIC_REQUESTS is off, so nothing rolls back after."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with denials_kept():
            return self.get_response(request)
