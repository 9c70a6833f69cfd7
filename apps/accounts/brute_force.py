"""Brute-force defences: passwords (django-axes), invitation tokens (per address, in the cache).
OTP codes are locked in apps.accounts.mfa. Every lockout is an audit event; pages say clearly
what happened and when to try again."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.audit.services import record


class AxesBackend(AxesStandaloneBackend):
    """django-axes' check before the real backends. Calls without a request (management code,
    test helpers) have no client to lock out and pass through to the next backend."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """allauth authenticates with ``email=``; the login form posts ``login``."""
    value = ""
    if credentials:
        value = credentials.get("email") or credentials.get("username") or ""
    if not value and request is not None and request.method == "POST":
        value = request.POST.get("login", "")
    return str(value).strip().lower()


def axes_lockout_response(request: HttpRequest, original_response: Any = None,
                          credentials: Any = None) -> HttpResponse:
    minutes = int(float(settings.AXES_COOLOFF_TIME) * 60)
    return render(request, "accounts/locked_out.html", {"minutes": minutes}, status=429)


try:  # axes sends this once, when an account becomes locked
    from axes.signals import user_locked_out

    @receiver(user_locked_out)
    def _locked_out(sender: Any, request: HttpRequest | None = None, username: str | None = None,
                    **kwargs: Any) -> None:
        from apps.accounts.models import User

        user = User.objects.filter(email=(username or "").lower()).first()
        # The attempted address is not stored unless it is an account: only the fact.
        record(action="auth.locked_out", actor=None, actor_label=user.email if user else "anonymous",
               outcome="denied", request=request,
               target=user, details={"failures": settings.AXES_FAILURE_LIMIT, "factor": "password"})
except ImportError:  # pragma: no cover
    pass


def _invite_key(request: HttpRequest) -> str:
    return f"lightbox:invite-fail:{request.META.get('REMOTE_ADDR', '')}"


def invitation_token_blocked(request: HttpRequest) -> bool:
    return cache.get(_invite_key(request), 0) >= settings.LIGHTBOX_INVITE_TOKEN_MAX_FAILURES


def invitation_token_failed(request: HttpRequest) -> int:
    """Count one unknown invitation token from this address (window: the first failure)."""
    key = _invite_key(request)
    window = settings.LIGHTBOX_INVITE_TOKEN_WINDOW_MINUTES * 60
    if cache.add(key, 1, window):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:
            cache.set(key, 1, window)
            count = 1
    if count == settings.LIGHTBOX_INVITE_TOKEN_MAX_FAILURES:
        record(action="invitation.token_locked_out", outcome="denied", request=request, actor_label="anonymous",
               details={"failures": count})
    return count
