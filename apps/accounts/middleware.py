"""The access gate, after authentication and the active organization are known:

1. idle timeout: a session unused for longer than its organization allows is signed out
   (shorter for external consultants and patients than for staff: each organization's limit for
   the person's role there, or for an organization that sent them a share its consultants' one,
   the strictest winning; an account of no organization
   gets the limit of the organizations its shares come from, else a default; an operator,
   is_staff or is_superuser, at most LIGHTBOX_OPERATOR_IDLE_MINUTES);
   a session an organization's single sign-on opened is signed out as soon as that provider could
   no longer sign the person in (``apps.accounts.sso.session_outlived``, which asks
   ``policy.sso_sign_in_allowed``: they came to reach another organization's data since), unless
   it was verified with a second factor they had before that sign-in;
   the anonymous share links a browser session opened (signed in or not) end after the strictest
   consultants-and-patients limit of their organizations without activity (``idle_limit_of_links``):
   the holder opens the link again, and passes its second factor again;
2. second factor: a user with an authenticator must enter a code after the password; a user
   whose role requires one and who has none is sent to enrol; recovery codes must be saved
   before anything else is reachable;
3. patients reach the patient portal only (403 elsewhere, on a page that leads back to the portal;
   home redirects there), plus the two doors into it: their share links (``/s/<token>/``, which
   sends a patient to the portal once the link's checks pass) and the study download endpoint,
   where ``apps.sharing.policy`` lets a patient take the education rendition of what a live grant
   names and nothing else. An account of no organization that the policy gives nothing beyond
   the portal is kept to the portal the same way (``request.kept_to_portal``;
   ``policy.kept_to_portal_without_membership``): one whose live grants are all patient-education
   shares (a patient who accepted one sent to their e-mail address), and one that is a patient by
   its history (its patient membership ended, or it accepted a patient invitation and has no
   membership) holding no share of another organization: those grants give them nothing else
   anyway (``policy.USE_CASE_GIVES``, the patient rule), so the gate shows the patient's page and
   way back rather than the staff refusal of a page they were never meant to reach;
4. the patient portal is for patients: a member who is a patient in none of their organizations
   (staff, an external consultant) is sent to their dashboard, told why, rather than shown a
   portal that says nothing was shared with them (what is shared with them is on their shared
   cases, where an opened link sends them: ``apps.sharing.views._lands_on_portal``), unless a
   live patient-education share is addressed to them: the portal is the only place it shows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils import translation
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext as _

from apps.accounts import mfa, sso
from apps.audit.services import record
from apps.core.api import is_api_request
from apps.core.redirects import with_next
from apps.organizations.models import Role
from apps.sharing import policy

LAST_SEEN = "lightbox_last_seen"
#: the shortest idle limit there is (``idle_limit_seconds``: whole minutes; the defaults at least one)
_SHORTEST_LIMIT = 60
STAFF_ROLES = {Role.ORG_ADMIN, Role.RADIOLOGIST, Role.CLINICIAN, Role.COORDINATOR}

# reachable before the second factor is settled (sign-out, the MFA pages, static files...)
_OPEN_PREFIXES = ("/static/", "/accounts/logout/", "/accounts/mfa/", "/accounts/activity/", "/i18n/", "/healthz",
                  "/readyz", "/invite/", "/favicon.ico")
# what a patient may reach
_PATIENT_PREFIXES = ("/portal/", "/accounts/", "/i18n/", "/static/", "/invite/", "/healthz", "/readyz", "/s/")
_PORTAL_PREFIX = "/portal/"
#: the one data endpoint a patient reaches (apps.renditions.views.study_download): the portal's
#: download button; the policy refuses a patient every rendition but the education one
_PATIENT_DOWNLOAD = re.compile(r"^/studies/[0-9a-f-]{36}/download/$")
#: requests a page sends on its own, on a timer, not for the reader's input (an open viewer's
#: access check, apps.viewer.views.viewer_access; the upload page asking for the states of its
#: uploads' studies, apps.imaging.views.upload_states): not activity, so a page left open is
#: still signed out after the idle limit
_NOT_ACTIVITY = re.compile(r"^(/viewer/studies/[0-9a-f-]{36}/access|/studies/uploads/states/)$")


def idle_limit_seconds(memberships: list, user: Any = None) -> int | None:
    """Each organization's limit for the person's role there: its staff limit where they are
    staff, its consultants-and-patients limit where they are an external consultant or a patient
    (staff elsewhere or not: a consultants' organization asks its limit of everyone it lets in
    that way), and that same limit of each organization that sent ``user`` a live share and of
    which they are no member (``policy.live_grant_idle_minutes``: the live grants the request's
    gate and navigation read once). The strictest wins; None when none of them sets one."""
    minutes = [m.organization.staff_idle_minutes if m.role in STAFF_ROLES else m.organization.external_idle_minutes
               for m in memberships]
    if user is not None:
        member_of = {m.organization_id for m in memberships}
        minutes += [limit for org_id, limit in policy.live_grant_idle_minutes(user).items() if org_id not in member_of]
    minutes = [m for m in minutes if m]
    return min(minutes) * 60 if minutes else None


def idle_limit_without_membership(user: Any) -> int:
    """The idle limit of an account that is an active member of no organization (a patient who
    holds an education share sent to their address, someone whose membership ended and who still
    holds a share): the strictest consultants-and-patients limit of the organizations its live
    shares come from, else LIGHTBOX_IDLE_MINUTES_DEFAULT. Never none: such a session was never
    signed out for inactivity."""
    return idle_limit_seconds([], user) or settings.LIGHTBOX_IDLE_MINUTES_DEFAULT * 60


def idle_limit_of_operator(user: Any, limit: int | None) -> int | None:
    """``limit`` (that of the person's organizations and shares), or, for an operator
    (``mfa.is_operator``: the Django admin, every organization's rows), LIGHTBOX_OPERATOR_IDLE_MINUTES
    when stricter or when nothing else sets one: an operator is usually a member of no
    organization, and got the no-membership default by accident."""
    if not mfa.is_operator(user):
        return limit
    operator = settings.LIGHTBOX_OPERATOR_IDLE_MINUTES * 60
    return min(limit, operator) if limit else operator


@dataclass(frozen=True)
class _LinkHeld:
    """What ``idle_limit_seconds`` reads of a membership, for an anonymous link's organization: no
    role there (its holder comes from outside, as a consultant does)."""

    organization: Any
    organization_id: int
    role: str = ""


def idle_limit_of_links(link_ids: list[int]) -> int:
    """The idle limit of a browser session holding anonymous share links: each link's
    organization's limit for someone let in from outside (``idle_limit_seconds``: its
    consultants-and-patients limit), the strictest winning; else LIGHTBOX_IDLE_MINUTES_DEFAULT.
    Never none: a link holder's session was never ended for inactivity (found by review)."""
    from apps.organizations.models import Organization

    held = [_LinkHeld(organization=org, organization_id=org.pk)
            for org in Organization.objects.filter(share_links__pk__in=link_ids).distinct()]
    return idle_limit_seconds(held) or settings.LIGHTBOX_IDLE_MINUTES_DEFAULT * 60


def _links_idle(request: HttpRequest, now: float) -> int | None:
    """The idle limit (seconds) after which the anonymous links this browser session holds were
    just ended (``sharing.services.link_session_idle_end``: recorded, dropped; the holder opens
    the link again, and passes its second factor again), or None when it holds none or they are
    in use. When they were last used is kept as a signed-in person's is (at most every 30 s; a
    timer's request, ``_NOT_ACTIVITY``, is not activity)."""
    from apps.sharing import services as sharing_services

    session = getattr(request, "session", None)
    if session is None or not session.get(policy.LINK_SESSION_KEY):
        return None
    last = session.get(sharing_services.LINK_LAST_SEEN_SESSION_KEY)
    if last is not None and now - float(last) > 60:  # no organization's limit is under a minute: nothing read before
        limit = idle_limit_of_links(list(session[policy.LINK_SESSION_KEY]))
        if now - float(last) > limit:
            sharing_services.link_session_idle_end(request, limit=limit)
            return limit
    if (last is None or now - float(last) > 30) and not _NOT_ACTIVITY.match(request.path):
        session[sharing_services.LINK_LAST_SEEN_SESSION_KEY] = now
    return None


def is_patient_only(memberships: list) -> bool:
    return bool(memberships) and all(m.role == Role.PATIENT for m in memberships)


def is_patient_nowhere(memberships: list) -> bool:
    """A member of some organization who is a patient in none of them."""
    return bool(memberships) and all(m.role != Role.PATIENT for m in memberships)


def _refuse(request: HttpRequest, url: str | None, code: str) -> HttpResponse:
    """An API client gets JSON naming ``code``; a page is sent to ``url``, or, without one,
    gets the 403 page."""
    if is_api_request(request):
        return JsonResponse({"detail": code}, status=403)
    if url is None:
        raise PermissionDenied
    return redirect(url)


class AccessGateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        # 0. the anonymous share links this browser session opened, signed in or not
        if (link_limit := _links_idle(request, time.time())) is not None and not request.path.startswith("/s/"):
            messages.info(request, _("Your access through a share link ended after %(minutes)s minutes without "
                                     "activity. Open the link again from the message you received it in.")
                          % {"minutes": link_limit // 60})
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        memberships = list(getattr(request, "my_memberships", []) or [])
        path = request.path
        here = request.get_full_path()  # where a sign-in or a code sends the user back to

        # 1. idle timeout
        now = time.time()
        last = request.session.get(LAST_SEEN)

        def limit_now() -> int | None:
            limit = idle_limit_seconds(memberships, user) if memberships else idle_limit_without_membership(user)
            return idle_limit_of_operator(user, limit)

        # no limit is under a minute (whole minutes, 0 for none; the defaults at least 1): a session
        # used within the last minute is not signed out, whatever its limit, which is then read only
        # for a page that tells the browser (static/js/activity.js), not for an API call or a redirect
        if last is not None and now - float(last) > _SHORTEST_LIMIT:
            limit = request.idle_limit_seconds = limit_now()
        else:
            limit, request.idle_limit_seconds = None, SimpleLazyObject(limit_now)
        if limit and last is not None and now - float(last) > limit:
            record(action="auth.idle_timeout", actor=user, request=request, details={"limit_seconds": limit})
            logout(request)
            messages.info(request, _("You were signed out after %(minutes)s minutes without activity.")
                          % {"minutes": limit // 60})
            return _refuse(request, with_next("account_login", here), "signed_out_idle")
        # written at most every 30 s; a timer's request (_NOT_ACTIVITY) is not activity
        if (last is None or now - float(last) > 30) and not _NOT_ACTIVITY.match(path):
            request.session[LAST_SEEN] = now
        # a single sign-on's session, while its provider could still sign the person in
        if sso.session_outlived(request, memberships):
            sso.session_end(request, during="request")
            return _refuse(request, with_next("account_login", here), "signed_out_sso")

        # 2. second factor
        if settings.LIGHTBOX_MFA_ENFORCED and not path.startswith(_OPEN_PREFIXES):
            if not user.is_verified():
                if mfa.has_second_factor(user):
                    return _refuse(request, with_next("accounts:mfa_verify", here), "otp_required")
                if mfa.mfa_required(user):
                    return _refuse(request, with_next("accounts:mfa_setup", here), "mfa_enrolment_required")
            elif mfa.recovery_codes_pending(user):
                return _refuse(request, with_next("accounts:recovery_codes", here), "recovery_codes_pending")

        # 3. patients, and accounts of no organization that the policy gives only what the portal
        # shows (patients by their history too): the patient portal only (home leads there;
        # anything else is refused)
        kept = is_patient_only(memberships) or (
            not memberships and policy.kept_to_portal_without_membership(user))
        request.kept_to_portal = kept  # the refusal page and the navigation speak to a patient
        if kept and not path.startswith(_PATIENT_PREFIXES) and not _PATIENT_DOWNLOAD.match(path):
            if path == "/":
                return redirect("education:portal")
            return _refuse(request, None, "patient_portal_only")

        # 4. the patient portal: not for members who are patients nowhere (their dashboard
        # instead), unless a patient-education share is theirs (the portal is where it shows)
        if (path.startswith(_PORTAL_PREFIX) and is_patient_nowhere(memberships)
                and not policy.has_portal_share(policy.live_grant_use_cases(user))):
            messages.info(request, _("The patient portal is for patients. Here is your dashboard."))
            return redirect("dashboard")
        return self.get_response(request)


class UserLanguageMiddleware:
    """A signed-in person's pages are in their own language (``User.language``), on whichever
    device they sign in: it is activated for the request and the language cookie follows it. The
    switcher changes both (``apps.accounts.views.set_language``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from apps.accounts.services import language_supported

        user = getattr(request, "user", None)
        wanted = language_supported(user.language) if user is not None and user.is_authenticated else ""
        if wanted and wanted != translation.get_language():
            translation.activate(wanted)
            request.LANGUAGE_CODE = wanted
        response = self.get_response(request)
        name = settings.LANGUAGE_COOKIE_NAME
        if wanted and request.COOKIES.get(name) != wanted and name not in response.cookies:
            response.set_cookie(name, wanted, max_age=settings.LANGUAGE_COOKIE_AGE,
                                path=settings.LANGUAGE_COOKIE_PATH, domain=settings.LANGUAGE_COOKIE_DOMAIN,
                                secure=settings.LANGUAGE_COOKIE_SECURE, httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                                samesite=settings.LANGUAGE_COOKIE_SAMESITE)
        return response
