"""Sign-in events go to the audit trail through the one record() entry point."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from apps.audit.services import record


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(action="auth.signed_in", actor=user, request=request)
    if request is not None:
        from apps.accounts.services import language_at_sign_in
        from apps.accounts.sso import session_signed_in

        language_at_sign_in(user=user, request=request)
        if hasattr(request, "session"):
            session_signed_in(request, user)  # which organization's single sign-on opened it, if one did


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(action="auth.signed_out", actor=user, request=request)
    if request is not None:
        from apps.core.middleware import SIGNED_OUT

        setattr(request, SIGNED_OUT, True)  # the response clears the browser's copies (PrivateByDefaultMiddleware)


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # The attempted e-mail is not stored: it may be mistyped personal data. Only the fact, and,
    # when it names an account, that account's id (so its organizations' admins see the attempt).
    from django.contrib.auth import get_user_model

    login = next((str(credentials[k]) for k in ("email", "login", "username") if credentials.get(k)), "")
    account = get_user_model().objects.filter(email__iexact=login.strip()).first() if login.strip() else None
    record(action="auth.sign_in_failed", outcome="denied", request=request, actor_label="anonymous", target=account)
