"""Brute-force defences: passwords (django-axes), invitation tokens (per address, in the cache),
the code that confirms an authenticator being enrolled (per account, in the cache). Codes of an
enrolled second factor are locked in apps.accounts.mfa (on the device). Every lockout is an
audit event; pages say clearly what happened and when to try again."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

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


def _counted(key: str, window: int) -> int:
    """Add one to the count under ``key`` (atomic in Redis), kept ``window`` seconds from the first."""
    if cache.add(key, 1, window):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired in between
        cache.set(key, 1, window)
        return 1


def invitation_token_failed(request: HttpRequest) -> int:
    """Count one unknown invitation token from this address (window: the first failure)."""
    count = _counted(_invite_key(request), settings.LIGHTBOX_INVITE_TOKEN_WINDOW_MINUTES * 60)
    if count == settings.LIGHTBOX_INVITE_TOKEN_MAX_FAILURES:
        record(action="invitation.token_locked_out", outcome="denied", request=request, actor_label="anonymous",
               details={"failures": count})
    return count


# --- the code that confirms an authenticator being enrolled --------------------------------------
# Not on the device, as the sign-in codes are (apps.accounts.mfa.locked_until): the device being
# enrolled is not stored until a code confirms it (its key waits in the session), and a count kept
# in the session would not hold against codes posted at once (each request reads the count as it
# was and writes it back). The same limits as the enrolled factor: LIGHTBOX_OTP_MAX_FAILURES wrong
# codes lock enrolment for LIGHTBOX_OTP_LOCK_MINUTES, recorded as the sign-in codes are (purpose
# "enrol"). While Redis cannot be reached the count rests, as the other counts here do
# (apps.core.cache); the pending key is a secret of the very session that posts the codes.

def _enrol_key(user: Any) -> str:
    return f"lightbox:otp-enrol-fail:{user.pk}"


def _enrol_until_key(user: Any) -> str:
    return f"lightbox:otp-enrol-locked:{user.pk}"


def enrolment_code_claim(request: HttpRequest, user: Any) -> datetime | None:
    """Claim one try at the code typed on the enrolment page, before it is checked: None when it
    may be checked, else when enrolment unlocks (the refusal recorded, the code left unchecked).
    Counted first, atomically, so that codes posted at once cannot all be checked against a count
    none of them has raised yet; a right code gives its try back (``enrolment_code_right``)."""
    window = settings.LIGHTBOX_OTP_LOCK_MINUTES * 60
    tries = _counted(_enrol_key(user), window)
    if tries <= settings.LIGHTBOX_OTP_MAX_FAILURES:
        return None
    stored = cache.get(_enrol_until_key(user))
    until = (datetime.fromtimestamp(stored, tz=UTC) if stored else timezone.now() + timedelta(seconds=window))
    record(action="auth.otp_refused_locked", actor=user, outcome="denied", request=request,
           details={"purpose": "enrol"})
    return until


def enrolment_code_wrong(request: HttpRequest, user: Any) -> datetime | None:
    """A claimed code did not match: recorded (``auth.otp_failed``); the try that reaches
    LIGHTBOX_OTP_MAX_FAILURES locks enrolment for LIGHTBOX_OTP_LOCK_MINUTES from now (recorded
    once, ``auth.otp_locked_out``). Returns when enrolment unlocks, None while it is not locked."""
    failures = min(int(cache.get(_enrol_key(user), 1)), settings.LIGHTBOX_OTP_MAX_FAILURES)
    record(action="auth.otp_failed", actor=user, outcome="denied", request=request,
           details={"purpose": "enrol", "failures": failures})
    if failures < settings.LIGHTBOX_OTP_MAX_FAILURES:
        return None
    lock = settings.LIGHTBOX_OTP_LOCK_MINUTES * 60
    until = timezone.now() + timedelta(seconds=lock)
    if cache.add(_enrol_until_key(user), until.timestamp(), lock):
        cache.set(_enrol_key(user), failures, lock)  # the count lasts as long as the lock
        record(action="auth.otp_locked_out", actor=user, outcome="denied", request=request,
               details={"purpose": "enrol", "failures": failures,
                        "minutes": settings.LIGHTBOX_OTP_LOCK_MINUTES})
        return until
    stored = cache.get(_enrol_until_key(user))
    return datetime.fromtimestamp(stored, tz=UTC) if stored else until


def enrolment_code_right(user: Any) -> None:
    """The code matched: wrong codes before it no longer count."""
    cache.delete_many([_enrol_key(user), _enrol_until_key(user)])


# --- "Sign in with your organization" (apps.accounts.views.sso_start) ---------------------------
# Every address sent there is counted per client address: past LIGHTBOX_SSO_START_CLIENT_MAX_TRIES
# within LIGHTBOX_SSO_START_WINDOW_MINUTES of the first, the client is refused (429) until the
# window ends, recorded once (``auth.locked_out``, factor "sso_start"). The limit is high: a
# hospital's staff all reach the portal from its one public (NAT) address, and the answer is the
# same for every address (nothing to learn by guessing); it bounds the e-mails one client causes.
# The typed address is counted too (kept in the cache as a digest only), but that count never
# refuses: anyone may type anyone's address, and a refusal tied to an address would let anyone
# keep a chosen staff member from signing in. Past LIGHTBOX_SSO_START_ADDRESS_MAX_EMAILS in the
# window the address is just e-mailed no more, silently (the page is the same).

def _sso_start_keys(request: HttpRequest, email: str) -> tuple[str, str]:
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    return (f"lightbox:sso-start:client:{request.META.get('REMOTE_ADDR', '')}",
            f"lightbox:sso-start:address:{digest}")


def sso_start_claim(request: HttpRequest, email: str) -> tuple[bool, bool]:
    """Count one try of ``email`` (lower-case) from this client: (the client may go on, the
    address may be e-mailed). The client is refused past LIGHTBOX_SSO_START_CLIENT_MAX_TRIES (the
    first refusal recorded); the address is e-mailed no more past
    LIGHTBOX_SSO_START_ADDRESS_MAX_EMAILS, and that is all."""
    client_key, address_key = _sso_start_keys(request, email)
    window = settings.LIGHTBOX_SSO_START_WINDOW_MINUTES * 60
    limit = settings.LIGHTBOX_SSO_START_CLIENT_MAX_TRIES
    count = _counted(client_key, window)
    if count > limit:
        if count == limit + 1:  # the try that found it refused first: recorded once
            record(action="auth.locked_out", actor=None, actor_label="anonymous", outcome="denied",
                   request=request, details={"failures": limit, "factor": "sso_start", "by": "client"})
        return False, False
    return True, _counted(address_key, window) <= settings.LIGHTBOX_SSO_START_ADDRESS_MAX_EMAILS
