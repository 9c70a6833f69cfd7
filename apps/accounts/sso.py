"""The ways on to an organization's single sign-on that need no password: "Sign in with your
organization" (``views.sso_start``) and its e-mailed link, an organization's own entry
(``views.sso_organization``, ``/accounts/sso/<slug>/``) and the organization this browser last
signed in with (a signed cookie, ``remembered_organization``).

The page answers every address alike (same status, same words, the same work in the request):
were staff sent on to their provider and others told that no organization signs them in, anyone
could learn which addresses are a hospital's staff without signing in (found by a reviewer). Nor
may every address of a domain be sent to the provider of an organization naming it: several
organizations may name one domain, and an address goes only to the provider of an organization
where it is active staff (``sso_config_for``), never to another's, where its owner would
type their hospital password. So the way on is e-mailed: an address staff of an organization
whose single sign-on takes it gets a link to that organization's provider; any other gets
nothing, and the page says to sign in with the password otherwise. An address that the single
sign-on of more than one organization takes (staff of each, each naming its domain) is e-mailed no
link but the choice (``sso_configs_for``): each organization by name, with its provider's host
and its own entry (``/accounts/sso/<slug>/``), so that the person, not the oldest configuration,
picks their hospital's provider (found by a reviewer: another organization's admin who had added
the address first had its provider chosen).

The e-mail is made and sent by a task queued once the request commits
(``sso_link_send_task``), never in the request: the answer neither waits for the mail server
(``EMAIL_TIMEOUT`` bounds the task's wait) nor takes longer for a staff address than for any
other. Where tasks run eagerly (the embedded default, no broker), the task runs in the
request's process once the response has been sent (``eager_after_response``, apps.core.queue),
so there too the answer's time does not include the e-mail.

The link names the account and the single sign-on by their public ids and a one-use nonce kept in
the cache for ``SSO_LINK_MINUTES``, signed (not encrypted: it holds nothing internal); opening it
checks again that the address is still that organization's staff, and the POST that goes on to
the provider uses the nonce up once the redirect to the provider is built (``sso_link_start``): a
link forwarded or read from a mailbox later leads nowhere, and a provider that cannot be reached
uses nothing up. It signs nobody in: the provider does.

An address typed more than ``LIGHTBOX_SSO_START_ADDRESS_MAX_EMAILS`` times in a window is
e-mailed no more in that window, silently (``brute_force.sso_start_claim``): anyone may type
anyone's address, so a count of an address never refuses anything, else anyone could keep a
chosen staff member from signing in. That person still has their organization's own entry and the
organization remembered on their browser, which need no e-mail."""

from __future__ import annotations

import logging
import secrets
import smtplib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from apps.accounts.models import SSOConfig, User

logger = logging.getLogger(__name__)

#: how long an e-mailed link to an organization's sign-in works
SSO_LINK_MINUTES = 30
_SALT = "lightbox.accounts.sso-link"
#: the longest a start through a link holds it (``sso_link_start``): above the time allauth's start
#: may take on a provider that does not answer (SOCIALACCOUNT_REQUESTS_TIMEOUT, connect and read)
_START_LOCK_SECONDS = 120

#: the cookie naming the organization this browser last signed in with through single sign-on
#: (its public slug, signed), for "Continue with <organization>" on the sign-in page
REMEMBERED_COOKIE = "lightbox_sso_org"
_REMEMBERED_SALT = "lightbox.accounts.sso-remembered"
REMEMBERED_DAYS = 365


def _nonce_key(nonce: str) -> str:
    return f"lightbox:sso-link:nonce:{nonce}"


def sso_configs_for(email: str) -> list[SSOConfig]:
    """Every single sign-on that takes ``email``: the enabled configurations whose domains take it,
    of organizations where the address is active staff, by organization name (``sso_config_for``'s
    contract)."""
    from apps.accounts.adapters import SSO_ROLES
    from apps.organizations.models import Membership

    staff_of = Membership.objects.filter(user__email=email, user__is_active=True, is_active=True,
                                         role__in=SSO_ROLES).values_list("organization_id", flat=True)
    return [c for c in SSOConfig.objects.filter(enabled=True, organization_id__in=list(staff_of))
            .select_related("organization").order_by("organization__name", "pk") if c.allows_email(email)]


def sso_config_for(email: str) -> SSOConfig | None:
    """The single sign-on that takes ``email``: an enabled configuration whose domains take it, of
    an organization where the address is active staff; none otherwise (the person signs in their
    own way, and hears what anyone hears for an address no single sign-on takes), and none when
    several do (``sso_configs_for``): no link then, only the choice, which the person makes.

    Security contract: an address is never sent to the provider of an organization it is not
    staff of. Any organization's admin may name a domain (its staff's, ``sso_config_save``), and
    several may name one: were the domain enough, another hospital's staff would be sent to a
    provider that admin runs, to type their hospital password there. Nor is one of several chosen
    for the person: an admin may add any address as their staff (and name its domain once it has
    signed in), so the oldest configuration was another organization's where that admin had."""
    configs = sso_configs_for(email)
    return configs[0] if len(configs) == 1 else None


def sso_link_url(*, user: User, config: SSOConfig) -> str:
    """A new one-use link on to ``config``'s provider for ``user`` (made without a request: the
    portal's address, ``site_url``)."""
    from apps.core.site import site_url

    nonce = secrets.token_urlsafe(16)
    cache.set(_nonce_key(nonce), str(user.public_id), SSO_LINK_MINUTES * 60)
    token = signing.dumps({"u": str(user.public_id), "c": str(config.public_id), "n": nonce}, salt=_SALT)
    return site_url(reverse("accounts:sso_continue", kwargs={"token": token}))


#: the ``config_id`` of ``sso_link_send`` for an address that several single sign-ons take
CHOOSE = 0


def sso_link_send(*, user_id: int, config_id: int) -> None:
    """E-mail the account ``user_id`` the link on to the single sign-on ``config_id``, in their
    language, if it is still active staff that single sign-on takes (``sso_config_for``); with
    ``config_id`` CHOOSE, the choice of the single sign-ons that take it, if there are several
    (``sso_configs_for``), and no link; nothing otherwise. Run by ``tasks.sso_link_send_task``,
    after the request."""
    from apps.accounts.services import language_of, templated_email
    from apps.core.site import site_url

    user = User.objects.filter(pk=user_id, is_active=True).first()
    configs = sso_configs_for(user.email.lower()) if user is not None else []
    if config_id == CHOOSE and len(configs) > 1:
        name = "sso_choose"
        context: dict[str, Any] = {"choices": [
            {"organization": c.organization, "provider_host": c.issuer_host,
             "url": site_url(reverse("accounts:sso_organization", kwargs={"slug": c.organization.slug}))}
            for c in configs]}
    elif len(configs) == 1 and configs[0].pk == config_id:
        name = "sso_link"
        context = {"organization": configs[0].organization, "url": sso_link_url(user=user, config=configs[0]),
                   "minutes": SSO_LINK_MINUTES}
    else:
        return
    message = templated_email(name, context, to=user.email, language=language_of(user))
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:  # TimeoutError (EMAIL_TIMEOUT) included
        # as for a password reset: the person asks again; the log names the error's type only
        logger.warning("E-mail %s not sent: %s", name, type(exc).__name__)


def sso_link_read(token: str, config_for: Any) -> tuple[User, SSOConfig, str] | None:
    """The account and single sign-on a link names, and its nonce, if it is genuine, not older
    than SSO_LINK_MINUTES, not used yet, and the account still active staff of that organization
    (``config_for``, ``sso_config_for``, takes it to that same configuration); None otherwise.
    Reading uses nothing up (the link's page, a GET: a mail scanner opening it)."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=SSO_LINK_MINUTES * 60)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(data, dict) or not isinstance(data.get("n"), str):
        return None
    if cache.get(_nonce_key(data["n"])) != data.get("u"):
        return None
    user = User.objects.filter(public_id=data["u"], is_active=True).first()
    if user is None:
        return None
    config = config_for(user.email.lower())
    if config is None or str(config.public_id) != data.get("c"):
        return None
    return user, config, data["n"]


def sso_link_start(token: str, config_for: Any, start: Callable[[SSOConfig], HttpResponse]) -> HttpResponse | None:
    """Go on through the link ``token`` (its POST): ``start(config)`` builds the way on to the
    provider (allauth's start, which fetches the provider's discovery document), and the link is
    used up only once that is built, a redirect to the provider. A start that fails (the provider
    down or unreachable, its discovery document wrong: a 503 or an error page, or an exception)
    uses nothing up: the link works again until it expires, and the person tries again later
    rather than asking for another e-mail (found by review: the link was used up by a provider
    that could not be reached). None if the link does not lead on (``sso_link_read``), or is
    being used at this moment by another request.

    Security contract: a link leads on to its provider once. Its use is held by a lock in the
    cache (``cache.add``, atomic) for the time the start takes: of two uses at once, from two
    browsers, one only gets as far as the provider, the other finds the link in use; the nonce
    is deleted before the redirect is returned, so no later use finds it. The lock lasts
    ``_START_LOCK_SECONDS`` at most (a process that dies during the start does not hold the link
    for ever); with the cache unreachable the nonce is not found and the link leads nowhere."""
    found = sso_link_read(token, config_for)
    if found is None:
        return None
    user, config, nonce = found
    lock = f"{_nonce_key(nonce)}:starting"
    if not cache.add(lock, "1", _START_LOCK_SECONDS):
        return None  # another request is going on through it now
    try:
        if cache.get(_nonce_key(nonce)) != str(user.public_id):
            return None  # used up between the read and the lock
        response = start(config)
        if 300 <= response.status_code < 400 and not cache.delete(_nonce_key(nonce)):
            return None  # on to the provider, but the nonce is gone: not this request's use
        return response
    finally:
        cache.delete(lock)


def organization_config(slug: str) -> SSOConfig | None:
    """The enabled single sign-on of the organization of public slug ``slug``, if any."""
    return SSOConfig.objects.filter(enabled=True, organization__slug=slug).select_related("organization").first()


def remember_organization(response: HttpResponse, config: SSOConfig) -> None:
    """Remember on this browser that it signed in with ``config``'s organization (its public slug,
    signed): the sign-in page offers "Continue with <organization>"."""
    response.set_signed_cookie(REMEMBERED_COOKIE, config.organization.slug, salt=_REMEMBERED_SALT,
                               max_age=REMEMBERED_DAYS * 24 * 3600, secure=settings.SESSION_COOKIE_SECURE,
                               httponly=True, samesite="Lax")


def remembered_organization(request: HttpRequest) -> SSOConfig | None:
    """The single sign-on of the organization this browser last signed in with, while it is on."""
    slug = request.get_signed_cookie(REMEMBERED_COOKIE, default=None, salt=_REMEMBERED_SALT,
                                     max_age=REMEMBERED_DAYS * 24 * 3600)
    return organization_config(slug) if slug else None


# --- sessions a single sign-on opened ----------------------------------------------------------

#: the session key naming the organization (its id) whose single sign-on opened the session; set at
#: the sign-in (``session_signed_in``), absent from a session a password or an invitation opened
OPENED_BY_KEY = "lightbox_sso_opened_by"
#: the session key listing the second factors (django-otp persistent ids) the person had when that
#: single sign-on signed them in: a code of one of them is the person's, not the provider's
FACTORS_BEFORE_KEY = "lightbox_sso_factors_before"


def session_signed_in(request: HttpRequest, user: User) -> None:
    """At every sign-in (``apps.accounts.signals``): one by an organization's single sign-on (its
    provider's answer accepted by ``SocialAccountAdapter.pre_social_login`` in this request) names
    that organization in the session, with the second factors the person has at that moment; any
    other sign-in (a password) takes both out: the session is no longer the provider's."""
    from django_otp import devices_for_user

    config = getattr(request, "lightbox_sso_accepted", None)
    if config is None:
        request.session.pop(OPENED_BY_KEY, None)
        request.session.pop(FACTORS_BEFORE_KEY, None)
        return
    request.session[OPENED_BY_KEY] = config.organization_id
    request.session[FACTORS_BEFORE_KEY] = [device.persistent_id for device in devices_for_user(user, confirmed=True)]


def session_outlived(request: HttpRequest, memberships: Any = None) -> bool:
    """Whether this session, opened by an organization's single sign-on, outlived the rule that let
    that provider sign the person in (``policy.sso_sign_in_allowed``, asked again now: the person
    may have come to reach another organization's data since, by accepting its invitation or
    being sent its share). Such a session must end, unless it was verified with a second factor
    the person had before that sign-in (a code the provider could not give), and one not enrolled
    in a session that provider opened (``policy.sso_factor_counts``): a factor enrolled through it
    may be its admin's. A session the rule still allows ends too when it was verified with such a
    factor and the person reaches another organization's data (the rule counted another factor
    of theirs, the session was verified with the provider's). False for a session
    no single sign-on opened. Asked by the access gate on every request of such a session (a few
    indexed queries; none for other sessions) and by the enrolment of a first second factor.
    ``memberships``: the request's (``request.my_memberships``), to find the organization without
    a query.

    Security contract: a provider's admin can make it name anyone of their organization's staff;
    the session it opens reaches every organization of the person. Were the rule asked only at the
    sign-in, a session opened while the person reached that organization alone would reach a
    case another organization shared with them later, and would enrol a second factor of the
    provider's choosing, which the provider then answers at every later sign-in."""
    from apps.organizations.models import Organization
    from apps.sharing import policy

    org_id = request.session.get(OPENED_BY_KEY)
    if org_id is None:
        return False
    user = request.user
    organization = next((m.organization for m in memberships or () if m.organization_id == org_id), None) \
        or Organization.objects.filter(pk=org_id).first()
    device = getattr(user, "otp_device", None)  # the factor this session was verified with (django-otp)
    if organization is not None and policy.sso_sign_in_allowed(user, organization):
        return (device is not None and not policy.sso_factor_counts(device, org_id)
                and policy.reaches_beyond(user, organization))
    return (device is None or device.persistent_id not in request.session.get(FACTORS_BEFORE_KEY, ())
            or not policy.sso_factor_counts(device, org_id))


def opened_by(request: HttpRequest) -> int | None:
    """The organization (its id) whose single sign-on opened ``request``'s session, or None (a
    password's, an invitation's, or no session)."""
    session = getattr(request, "session", None)
    return session.get(OPENED_BY_KEY) if session is not None else None


def session_end(request: HttpRequest, *, during: str) -> None:
    """End a session that outlived its single sign-on's rule (``session_outlived``): recorded (in
    the trail of each organization of the person, ``auth.sso_session_ended``; ``during``: what it
    was doing, "request" or "enrolment"), signed out, and told on the sign-in page why and how to
    sign in instead."""
    from django.contrib import messages
    from django.contrib.auth import logout
    from django.utils.translation import gettext as _

    from apps.audit.services import record

    record(action="auth.sso_session_ended", actor=request.user, outcome="denied", request=request,
           details={"organization_id": request.session.get(OPENED_BY_KEY), "during": during})
    logout(request)
    messages.warning(request, _(
        "You were signed out: your account now also reaches another organization's data, which your "
        "organization's single sign-on does not open on its own. Sign in with your e-mail address and "
        "password, and a second factor (if you have no password, use “Forgot your password?”)."))
