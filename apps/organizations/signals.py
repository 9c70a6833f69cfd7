"""Sign-in starts in the organization the person last switched to (``services.organization_at_sign_in``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@receiver(user_logged_in)
def _start_in_last_organization(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is not None and getattr(request, "session", None) is not None:
        from apps.organizations.services import organization_at_sign_in

        organization_at_sign_in(user=user, request=request)
