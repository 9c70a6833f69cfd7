"""Second factor: who must have one, checking codes (with lockout), and step-up for sensitive acts.

django-otp holds the devices: a TOTPDevice (authenticator app) and a StaticDevice (recovery
codes). A session is *verified* once a code was checked in it (``request.user.is_verified()``);
``OTP_VERIFIED_AT`` keeps when, for step-up.

Step-up, for views that give away access or diagnostic originals::

    from apps.accounts.mfa import require_recent_otp, RecentOTP

    @login_required
    @require_recent_otp            # a code within LIGHTBOX_STEP_UP_HOURS (default 12), else the
    def case_share(request, ...):  # step-up page asks for one and comes back to this URL (GET)
        ...

    class OriginalDownloadApi(APIView):
        permission_classes = [IsAuthenticated, RecentOTP]   # 403 "step_up_required" otherwise

A user without an authenticator app is sent to enrol one first. Both read the same
``recently_verified(request)``; nothing else decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

import django_otp
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from apps.accounts.models import User
from apps.audit.services import record
from apps.core.api import is_api_request
from apps.core.redirects import with_next

OTP_VERIFIED_AT = "lightbox_otp_verified_at"
RECOVERY_CODE_COUNT = 10


# --- who must ------------------------------------------------------------------------------

def is_operator(user: Any) -> bool:
    """An operator of the portal: ``is_staff`` or ``is_superuser``, who reaches the Django admin
    (/admin/), which lists every organization's people and rows. Set only from the command line
    (``createsuperuser``), never through the portal; an operator usually has no membership."""
    return bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))


def mfa_required(user: Any) -> bool:
    """True for an operator (``is_operator``: the admin shows every organization's people, so
    the access gate asks for a second factor there, as everywhere, and sends one with none to
    enrol like anyone else); when one of the user's active memberships has a role its
    organization requires a second factor for (Organization.mfa_required_roles); or when the
    user reaches the data of
    other organizations (a membership or a share there: ``policy.reaches_beyond``) than one that
    signs them in through its single sign-on only
    (``adapters.password_off_organizations``): that SSO cannot sign them in without a second
    factor (``policy.sso_sign_in_allowed``), so they sign in with a password, and the second
    factor stands in for the provider."""
    from apps.accounts.adapters import password_off_organizations
    from apps.organizations.models import Membership
    from apps.sharing.policy import reaches_beyond

    if not getattr(user, "is_authenticated", False):
        return False
    if is_operator(user):
        return True
    memberships = list(Membership.objects.filter(user=user, is_active=True)
                       .values_list("role", "organization__mfa_required_roles"))
    for role, required in memberships:
        if role in (required or []):
            return True
    return any(reaches_beyond(user, organization) for organization in password_off_organizations(user))


def totp_device(user: Any, *, confirmed: bool | None = True) -> TOTPDevice | None:
    qs = TOTPDevice.objects.filter(user=user)
    if confirmed is not None:
        qs = qs.filter(confirmed=confirmed)
    return qs.order_by("-id").first()


def has_second_factor(user: Any) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


# --- factors enrolled through a single sign-on ------------------------------------------------

def has_second_factor_outside_sso_of(user: Any, organization: Any) -> bool:
    """Whether ``user`` has a confirmed authenticator that was not enrolled in a session
    ``organization``'s single sign-on opened (``SSOEnrolledFactor``): one whose code that
    provider's admin cannot be the one to give (``policy.sso_sign_in_allowed``)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exclude(
        lightbox_sso_enrolled__organization=organization).exists()


def sso_enrolled_by(device: Any) -> int | None:
    """The organization (its id) whose single sign-on opened the session ``device`` (an
    authenticator or recovery codes) was enrolled in, or None: enrolled otherwise (a password's
    session), confirmed since (``sso_enrolled_confirm``), or before such enrolments were marked."""
    from apps.accounts.models import SSOEnrolledFactor

    if isinstance(device, TOTPDevice):
        mark = SSOEnrolledFactor.objects.filter(totp_device_id=device.pk)
    elif isinstance(device, StaticDevice):
        mark = SSOEnrolledFactor.objects.filter(static_device_id=device.pk)
    else:
        return None
    return mark.values_list("organization_id", flat=True).first()


def sso_enrolled_mark(request: HttpRequest | None, device: Any) -> None:
    """Mark ``device``, just enrolled (an authenticator confirmed, recovery codes made), as
    enrolled through the single sign-on that opened ``request``'s session, if one did
    (``sso.OPENED_BY_KEY``): that provider could have opened it to enrol a factor of its admin's
    choosing, which must not stand for the person against that provider later
    (``policy.sso_factor_counts``)."""
    from apps.accounts.models import SSOEnrolledFactor
    from apps.accounts.sso import opened_by

    org_id = opened_by(request) if request is not None else None
    if org_id is None:
        return
    field = "totp_device" if isinstance(device, TOTPDevice) else "static_device"
    SSOEnrolledFactor.objects.update_or_create(**{field: device}, defaults={"organization_id": org_id})


def sso_enrolled_to_confirm(request: HttpRequest) -> Any:
    """The organization through whose single sign-on the person's authenticator was enrolled,
    when this session is not one it opened (a code entered here confirms it,
    ``sso_enrolled_confirm``): the code page says so. None otherwise."""
    from apps.accounts.sso import opened_by
    from apps.organizations.models import Organization

    device = totp_device(request.user)
    org_id = sso_enrolled_by(device) if device is not None else None
    if org_id is None or org_id == opened_by(request):
        return None
    return Organization.objects.filter(pk=org_id).first()


def sso_enrolled_confirm(request: HttpRequest, device: Any) -> int | None:
    """A code of ``device`` was just entered in ``request``'s session: if ``device`` was enrolled
    through an organization's single sign-on and this session is not one that single sign-on
    opened (the person's password, or another organization's way), whoever signed in here holds
    the device: it is theirs, and its mark goes. The organization (id) whose mark went, or None."""
    from apps.accounts.models import SSOEnrolledFactor
    from apps.accounts.sso import opened_by

    org_id = sso_enrolled_by(device)
    if org_id is None or org_id == opened_by(request):
        return None
    field = "totp_device_id" if isinstance(device, TOTPDevice) else "static_device_id"
    SSOEnrolledFactor.objects.filter(**{field: device.pk}, organization_id=org_id).delete()
    return org_id


def recovery_codes_pending(user: Any) -> bool:
    """An authenticator is enrolled but its recovery codes were not yet saved."""
    return has_second_factor(user) and not StaticDevice.objects.filter(user=user, confirmed=True).exists()


# --- enrolment -------------------------------------------------------------------------------

#: the session key where the key of the authenticator being enrolled waits for its first code
TOTP_PENDING_KEY = "lightbox_totp_pending_key"


def totp_pending(request: HttpRequest) -> TOTPDevice:
    """The authenticator being enrolled in this session, not stored: its key waits in the session
    until a code from it confirms it (``totp_confirm``). So looking at the enrolment page writes
    nothing to the database, the QR code does not change on reload, and a key shown and abandoned
    dies with the session: it is never the key of a later enrolment, which someone who saw it
    then (over a shoulder, on a shared screen) could answer."""
    key = request.session.get(TOTP_PENDING_KEY)
    if not (isinstance(key, str) and len(key) == 40 and all(c in "0123456789abcdef" for c in key)):
        key = random_hex(20)
        request.session[TOTP_PENDING_KEY] = key
    return TOTPDevice(user=request.user, name="authenticator", key=key, confirmed=False)


def totp_confirm(request: HttpRequest, code: str) -> tuple[str, Any]:
    """Store the pending authenticator, confirmed, if ``code`` is its current one: (OTPResult.OK,
    the device). (WRONG, None), nothing stored, if not, or if the user has one already (a second
    tab, a double submit); (LOCKED, when it unlocks) after LIGHTBOX_OTP_MAX_FAILURES wrong codes,
    the code left unchecked (``brute_force.enrolment_code_claim``: the limits of the enrolled
    factor's lock, counted per account; failures and the lockout are recorded as the sign-in
    codes' are, purpose "enrol"). The code is checked as django-otp checks a stored device (its
    tolerance and drift) and is then used up (``last_t``), so it cannot also verify a sign-in."""
    from apps.accounts import brute_force

    user = request.user
    device = totp_pending(request)
    code = "".join((code or "").split())
    if not _totp_shaped(code, device):
        return OTPResult.WRONG, None
    until = brute_force.enrolment_code_claim(request, user)
    if until is not None:
        return OTPResult.LOCKED, until
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if not totp.verify(int(code), device.tolerance):
        until = brute_force.enrolment_code_wrong(request, user)
        return (OTPResult.WRONG, None) if until is None else (OTPResult.LOCKED, until)
    brute_force.enrolment_code_right(user)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one enrolment at a time
        if has_second_factor(user):
            return OTPResult.WRONG, None
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()  # left by enrolment pages before
        device.last_t, device.confirmed = totp.t(), True
        if getattr(settings, "OTP_TOTP_SYNC", True):
            device.drift = totp.drift
        device.last_used_at = timezone.now()
        device.save()
        sso_enrolled_mark(request, device)  # enrolled in a session a single sign-on opened: said so
    request.session.pop(TOTP_PENDING_KEY, None)
    return OTPResult.OK, device


def manual_key(device: TOTPDevice) -> str:
    """The key as an authenticator app takes it typed by hand (base32, as in the QR code)."""
    import base64

    return base64.b32encode(device.bin_key).decode().rstrip("=")


#: the session key naming the recovery codes (their device's id) this session may show, once
RECOVERY_CODES_SHOW_KEY = "lightbox_recovery_codes_show"


def recovery_codes_issue(user: Any, request: HttpRequest | None = None) -> list[str]:
    """New recovery codes (unconfirmed until the user says they saved them); old ones die.
    ``request``: the request of the person they are made for, whose session may then show them
    once (``recovery_codes_to_show``), and that were made in a session an organization's single
    sign-on opened are marked so (``sso_enrolled_mark``)."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="recovery", confirmed=False)
    sso_enrolled_mark(request, device)
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        token = StaticToken.random_token()
        device.token_set.create(token=token)
        codes.append(token)
    if request is not None:
        request.session[RECOVERY_CODES_SHOW_KEY] = device.pk
    return codes


def recovery_codes_to_show(request: HttpRequest, device: StaticDevice) -> list[str]:
    """The codes of ``device`` (the user's recovery codes) for the page to show: once, to the
    session they were made in (``recovery_codes_issue``), while they are not saved; [] otherwise.
    Asking uses the showing up, so a reload, the back button, another tab or someone at the same
    screen later reads none of them: who has not saved them makes new ones, which replace them."""
    shown = request.session.pop(RECOVERY_CODES_SHOW_KEY, None)
    if device.confirmed or shown != device.pk:
        return []
    return list(device.token_set.values_list("token", flat=True))


def recovery_codes_confirm(user: Any, request: HttpRequest | None = None) -> None:
    StaticDevice.objects.filter(user=user).update(confirmed=True)
    record(action="auth.mfa_recovery_codes_saved", actor=user, request=request)


# --- checking codes --------------------------------------------------------------------------

def locked_until(device: TOTPDevice) -> datetime | None:
    """When the second factor unlocks, or None if it is not locked. Locked after
    LIGHTBOX_OTP_MAX_FAILURES wrong codes in a row, for LIGHTBOX_OTP_LOCK_MINUTES (from the last).
    A lock that is over is lifted (its count starts again), in the database only if no try has
    moved the count since ``device`` was read."""
    if device.throttling_failure_count < settings.LIGHTBOX_OTP_MAX_FAILURES:
        return None
    # a spent count with no time (a row written by hand, or a lowered maximum) is a lock that is
    # over: read as "not locked" while every try was refused, it never lifted
    until = None if device.throttling_failure_timestamp is None else \
        device.throttling_failure_timestamp + timedelta(minutes=settings.LIGHTBOX_OTP_LOCK_MINUTES)
    if until is None or until <= timezone.now():
        TOTPDevice.objects.filter(pk=device.pk, throttling_failure_count=device.throttling_failure_count,
                                  throttling_failure_timestamp=device.throttling_failure_timestamp) \
            .update(throttling_failure_count=0, throttling_failure_timestamp=None)
        device.throttling_failure_count, device.throttling_failure_timestamp = 0, None
        return None
    return until


def _totp_shaped(code: str, device: TOTPDevice) -> bool:
    """Whether ``code`` could be ``device``'s authenticator code: its number of ASCII digits ("²"
    is a digit to str.isdigit(), not to int(), which read it with a 500)."""
    return code.isascii() and code.isdigit() and len(code) == device.digits


def _try_claim(device: TOTPDevice) -> int | None:
    """Claim one try at a code for ``device``'s user, before the code is checked: which wrong
    code in a row this one would be (1 to LIGHTBOX_OTP_MAX_FAILURES), or None when they are spent
    (locked; nothing is checked). Counted first, in one conditional UPDATE, so that codes sent at
    once cannot all be checked against a count none of them has raised yet (django-otp reads the
    count, checks the code, then writes the count plus one: twelve codes at once counted one or
    two and never locked). The number read back is this try's: its UPDATE holds the row until the
    transaction ends. A code that matches gives its try back (``_tries_reset``)."""
    with transaction.atomic():
        claimed = TOTPDevice.objects.filter(
            pk=device.pk, throttling_failure_count__lt=settings.LIGHTBOX_OTP_MAX_FAILURES,
        ).update(throttling_failure_count=F("throttling_failure_count") + 1,
                 throttling_failure_timestamp=timezone.now())
        if not claimed:
            return None
        return TOTPDevice.objects.filter(pk=device.pk).values_list("throttling_failure_count", flat=True).get()


def _tries_reset(device: TOTPDevice) -> None:
    """A code matched: the wrong ones before it no longer count (django-otp's throttle_reset)."""
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0, throttling_failure_timestamp=None)


def _totp_use(device: TOTPDevice, code: str) -> str:
    """OTPResult.OK if ``code`` is the authenticator's, as django-otp's verify_token decides (its
    tolerance and drift; a time step no later than the last one used is refused), and it is then
    used up (``last_t``) in one conditional UPDATE, so that of two requests with one code at once
    only one passes. REUSED if it is refused only for that: a code the app shows now (within the
    tolerance) whose time step was used already (a second sign-in within the same 30 seconds with
    the code just typed; the other of two requests with one code at once), so that the person is
    told to wait for the next code rather than that theirs is not right. WRONG otherwise. The
    refusal is the same either way (``otp_check`` counts both as wrong codes)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if totp.verify(int(code), device.tolerance, device.last_t + 1):
        used = {"last_t": totp.t(), "last_used_at": timezone.now()}
        if getattr(settings, "OTP_TOTP_SYNC", True):
            used["drift"] = totp.drift
        if TOTPDevice.objects.filter(pk=device.pk, last_t__lt=totp.t()).update(**used):
            return OTPResult.OK
        return OTPResult.REUSED  # another request used this time step (or a later one) meanwhile
    # verify() put the drift back; without the lower bound, a match is a time step already used
    if totp.verify(int(code), device.tolerance) and totp.t() <= device.last_t:
        return OTPResult.REUSED
    return OTPResult.WRONG


def _recovery_code_use(user: Any, code: str) -> StaticDevice | None:
    """The recovery codes' device if ``code`` is one of ``user``'s recovery codes, used up: one
    DELETE whose row count decides, so that a code sent twice at once works once (django-otp's
    verify_token reads it, then deletes it: both requests read it)."""
    static = StaticDevice.objects.filter(user=user, confirmed=True).first()
    if static is None or not code:
        return None
    deleted, _rows = StaticToken.objects.filter(device=static, token=code).delete()
    if not deleted:
        return None
    StaticDevice.objects.filter(pk=static.pk).update(last_used_at=timezone.now())
    return static


class OTPResult:
    OK = "ok"
    WRONG = "wrong"
    #: refused as a wrong code is (counted towards the lock), but the code is one the app shows
    #: now that was already used (``_totp_use``): the page says to wait for the next one
    REUSED = "reused"
    LOCKED = "locked"


def mark_verified(request: HttpRequest, device: Any) -> None:
    django_otp.login(request, device)
    request.session[OTP_VERIFIED_AT] = time.time()


def otp_check(request: HttpRequest, user: Any, code: str, *, purpose: str = "sign_in") -> tuple[str, Any]:
    """Check ``code`` (authenticator code or a recovery code) for ``user``; on success mark the
    session verified. Returns (OTPResult, locked_until or None): OK, WRONG, REUSED (an
    authenticator code already used, refused and counted as a wrong one: ``_totp_use``) or LOCKED.
    Every failure and lockout is recorded (a reused code's with ``details.reused``); the code
    itself never is."""
    device = totp_device(user)
    if device is None:
        return OTPResult.WRONG, None
    # each try is claimed before its code is checked (``_try_claim``): of codes sent at once, no
    # more than LIGHTBOX_OTP_MAX_FAILURES are checked
    failures = _try_claim(device) if locked_until(device) is None else None
    if failures is None:
        device.refresh_from_db(fields=["throttling_failure_count", "throttling_failure_timestamp"])
        record(action="auth.otp_refused_locked", actor=user, outcome="denied", request=request,
               details={"purpose": purpose})
        return OTPResult.LOCKED, locked_until(device) or _lock_from_now()
    code = "".join((code or "").split())
    matched: Any = None
    reused = False
    if _totp_shaped(code, device):
        used = _totp_use(device, code)
        if used == OTPResult.OK:
            matched = device
        reused = used == OTPResult.REUSED
    else:
        matched = _recovery_code_use(user, code.lower())
        if matched is not None:
            record(action="auth.mfa_recovery_code_used", actor=user, request=request,
                   details={"left": matched.token_set.count()})
    if matched is not None:
        _tries_reset(device)  # the try is given back, and the wrong codes before it
        mark_verified(request, matched)
        confirmed = sso_enrolled_confirm(request, matched)  # outside the single sign-on it was enrolled through
        record(action="auth.otp_verified", actor=user, request=request,
               details={"purpose": purpose, **({"confirmed_outside_sso_of": confirmed} if confirmed else {})})
        return OTPResult.OK, None
    record(action="auth.otp_failed", actor=user, outcome="denied", request=request,
           details={"purpose": purpose, "failures": failures, **({"reused": True} if reused else {})})
    if failures >= settings.LIGHTBOX_OTP_MAX_FAILURES:  # this try spent the last: recorded once
        device.refresh_from_db(fields=["throttling_failure_count", "throttling_failure_timestamp"])
        record(action="auth.otp_locked_out", actor=user, outcome="denied", request=request,
               details={"failures": failures, "minutes": settings.LIGHTBOX_OTP_LOCK_MINUTES})
        return OTPResult.LOCKED, locked_until(device) or _lock_from_now()
    return (OTPResult.REUSED if reused else OTPResult.WRONG), None


def _lock_from_now() -> datetime:
    """The end of a lock the device's row no longer shows when read again (a right code sent at
    the same time reset the count): a whole lock from now, as the refusal says."""
    return timezone.now() + timedelta(minutes=settings.LIGHTBOX_OTP_LOCK_MINUTES)


# --- step-up ---------------------------------------------------------------------------------

def recently_verified(request: HttpRequest, hours: float | None = None) -> bool:
    """A code was checked in this session within ``hours`` (LIGHTBOX_STEP_UP_HOURS)."""
    user = getattr(request, "user", None)
    check = getattr(user, "is_verified", None)
    if not (callable(check) and check()):
        return False
    at = request.session.get(OTP_VERIFIED_AT)
    hours = settings.LIGHTBOX_STEP_UP_HOURS if hours is None else hours
    return at is not None and time.time() - float(at) <= hours * 3600


def _record_step_up_required(request: HttpRequest, organization_id: int | None = None) -> None:
    """The refusal for want of a recent code, in the audit trail: the pages' and the API's alike.
    Recorded in the chain of the one organization the request acts in: ``organization_id``, that
    of the object the view found (a case, a share, a membership), else the active organization's
    (none: the global chain). Never in each of the person's organizations, as their account events
    are: its path names the object, and a case of one organization showed in another's audit page
    and exports (found by a reviewer). A path naming an object whose organization the caller did
    not name is recorded as its view's name only."""
    named = organization_id is not None
    if not named:
        active = getattr(request, "organization", None)
        organization_id = active.pk if active else None
    match = getattr(request, "resolver_match", None)
    details = ({"path": request.path[:200]} if named or match is None or not match.kwargs
               else {"view": match.view_name})
    record(action="auth.step_up_required", actor=request.user, outcome="denied", request=request,
           organization_id=organization_id, details=details)


def step_up_url(request: HttpRequest) -> str:
    return with_next("accounts:step_up", request.get_full_path())


def step_up_needed(request: HttpRequest) -> bool:
    """Whether a view under ``require_recent_otp`` (or ``RecentOTP``) would send this request to
    the step-up page now: what they decide, and what a page says before a button leads there."""
    return settings.LIGHTBOX_MFA_ENFORCED and not recently_verified(request)


def _view_of(target: str) -> Any:
    """The view ``target`` (a ``next`` path on this site) resolves to, None if none: where the
    step-up and enrolment pages read what the page they lead to asks (``step_up_reason``,
    ``is_download``), never from the query string, so that a link cannot make them say anything
    else."""
    from django.urls import Resolver404, resolve

    try:
        return resolve(urlsplit(target).path).func
    except Resolver404:
        return None


def step_up_reason(target: str) -> tuple[bool, str]:
    """For the step-up and enrolment pages: whether ``target`` (their ``next``, a path on this
    site) is a page that asks for a recent second factor, and the ``why`` its
    ``require_recent_otp`` gives ("" if none), so that they say why the user was sent there
    (read from its view: ``_view_of``)."""
    func = _view_of(target)
    return bool(getattr(func, "lightbox_step_up", False)), str(getattr(func, "lightbox_step_up_why", "") or "")


def require_recent_otp(view: Callable[..., HttpResponse] | None = None, *,
                       back: str | None = None, why: Any = None) -> Any:
    """Decorator: the view runs only with an OTP verification in the last LIGHTBOX_STEP_UP_HOURS;
    otherwise the user goes to the step-up page (enrolment first if they have no authenticator),
    which returns to this URL. Use it under ``login_required``. A view that only takes a POST (a
    button) names with ``back`` the page the button is on: the step-up returns there, and the user
    presses it again (a GET of the view itself would be refused). ``why`` (a lazy sentence) is what
    the step-up and enrolment pages then say (``step_up_reason``); without it they say only that
    the page the user was going to asks for a second factor."""
    if view is None:
        return lambda v: require_recent_otp(v, back=back, why=why)

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if (asked := step_up_first(request, back=back)) is not None:
            return asked
        return view(request, *args, **kwargs)

    return asks_step_up(why=why)(wrapped)


def step_up_first(request: HttpRequest, *, back: str | None = None,
                  organization_id: int | None = None) -> HttpResponse | None:
    """``require_recent_otp``'s answer, inside a view: None when the request has a recent second
    factor (the view goes on), else where it sends the user (recorded; ``back`` as for it, a URL
    name or a path: a button's page that takes an object's id). ``organization_id``: that of the
    object the view acts on, whose audit trail the refusal goes into (``_record_step_up_required``;
    the active organization's without it). For a
    view that answers some requests before asking (the page that asks to switch organization first:
    apps.organizations.switching.switch_first, which acts on nothing), marked with ``asks_step_up``."""
    if not step_up_needed(request):
        return None
    _record_step_up_required(request, organization_id)
    if is_api_request(request):
        return JsonResponse({"detail": "step_up_required", "step_up_url": step_up_url(request)}, status=403)
    if back is not None and request.method != "GET":
        return redirect(with_next("accounts:step_up", back if back.startswith("/") else reverse(back)))
    return redirect(step_up_url(request))


def asks_step_up(*, why: Any = None, download: bool | Callable[[QueryDict], str] = False,
                 ) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorator: mark a view as a page that asks for a recent second factor, with the ``why``
    the step-up and enrolment pages say (``step_up_reason`` reads the view a path resolves to).
    ``require_recent_otp`` marks the view it wraps; a view that checks its own access first and
    then calls a helper under ``require_recent_otp`` (the share steps), or ``step_up_first``, is
    marked with this, right above its ``def`` (the decorators above copy the mark). ``download``:
    the view answers a file to save (``is_download``); a function of its query string giving the
    words of the button that downloads it (``download_label``), or True."""
    def mark(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        view.lightbox_step_up = True  # type: ignore[attr-defined]
        view.lightbox_step_up_why = why  # type: ignore[attr-defined]
        view.lightbox_download = bool(download)  # type: ignore[attr-defined]
        view.lightbox_download_label = download if callable(download) else None  # type: ignore[attr-defined]
        return view
    return mark


def is_download(target: str) -> bool:
    """Whether ``target`` (a ``next`` path on this site) is a view marked ``asks_step_up(download=True)``:
    a file the browser saves, staying on the page it was asked from. The step-up and the
    enrolment then end on a page with the download's button and a way back (a redirect to it left
    the person on the code's page, as if nothing had happened). Read from its view, as
    ``step_up_reason`` (``_view_of``)."""
    return bool(getattr(_view_of(target), "lightbox_download", False))


def download_label(target: str) -> str:
    """The words of the button that downloads ``target`` (a download's path on this site,
    ``is_download``) on the page offering it after a second factor's check: what it downloads
    ("Download the original DICOM"), from its view's ``asks_step_up(download=...)`` and its query
    string (the rendition: what the download itself then gives); "" if its view says nothing, the
    page then saying "Download" (found by QA: a plain "Download" after the second factor, the
    person no longer knowing which)."""
    label = getattr(_view_of(target), "lightbox_download_label", None)
    return str(label(QueryDict(urlsplit(target).query))) if label is not None else ""


class RecentOTP(BasePermission):
    """DRF permission: like ``require_recent_otp``, answering 403 ``step_up_required`` with the
    ``step_up_url`` to pass the second factor again, and the refusal recorded in the audit trail
    as that decorator records the pages' refusals."""

    message = "step_up_required"

    def has_permission(self, request: Any, view: Any) -> bool:
        if not step_up_needed(request):
            return True
        organization_id = None
        if getattr(view, "detail", False):  # an object's action: refused in its organization's trail
            obj = view.get_object()  # 404 for one the user may not see, as without a step-up
            organization_id = getattr(obj, "organization_id", None)
        _record_step_up_required(request, organization_id)
        # the answer the decorator gives under /api/: where to pass the second factor again
        raise PermissionDenied({"detail": self.message, "step_up_url": step_up_url(request)})
