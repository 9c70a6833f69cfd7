"""allauth behaviour for Lightbox.

Nobody signs themselves up: staff accounts are made by an org admin (and then may sign in by the
organization's SSO), consultants and patients arrive by invitation. So open sign-up is closed,
for passwords and for SSO alike.

SSO: each organization configures one OpenID Connect provider (apps.accounts.models.SSOConfig).
allauth's ``openid_connect`` provider serves it at ``/accounts/oidc/org-<slug>/login/``; the app
is built here from the stored configuration (the secret is decrypted only in memory). Someone
arriving by SSO is signed in only when the provider vouches for their e-mail (verified), its
domain is allowed, and an org admin already made them a *staff* member of that organization:
SSO links accounts, it never creates one, and so never creates an org admin. Its provider's word
opens that organization only: a member of other organizations too is signed in by it only with a
second factor to enter next (``apps.sharing.policy.sso_sign_in_allowed``).
"""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django import forms
from django.http import HttpRequest
from django.shortcuts import render
from django.utils.translation import gettext as _

from apps.audit.services import record

logger = logging.getLogger(__name__)


def password_off_organizations(user: Any) -> Any:
    """The organizations that sign ``user`` in through their single sign-on only: those that
    turned password sign-in off, where the user is staff other than an org admin. Org admins
    keep their password (with a required second factor) so that a broken SSO cannot lock the
    organization out."""
    from apps.organizations.models import Organization, Role

    return Organization.objects.filter(
        password_login_allowed=False, memberships__user=user, memberships__is_active=True,
        memberships__role__in=[Role.RADIOLOGIST, Role.CLINICIAN, Role.COORDINATOR],
    ).distinct()


def password_login_refused(user: Any) -> bool:
    """Staff of an organization that turned password sign-in off must use its SSO, when that SSO
    can sign them in: it is enabled, its domains take their address, and
    ``policy.sso_sign_in_allowed`` (not so for a member of another organization too without a
    second factor: their password is their way in, with a second factor they must set up,
    ``mfa.mfa_required``, after which that SSO signs them in too). Not for staff of another
    organization that lets them sign in with a password (one that allows it, or where they are
    its admin): its way in stays theirs, with the second factor ``mfa.mfa_required`` asks of a
    person of several organizations.

    Security contract: an organization's switch refuses the password only of whom its own
    provider signs in instead; it never leaves an account with no way in (its admin making a
    member staff whose address its provider does not take, or another organization's staff)."""
    from apps.accounts.models import SSOConfig
    from apps.organizations.models import Membership
    from apps.sharing import policy

    password_off = list(password_off_organizations(user))
    if not password_off:
        return False
    if Membership.objects.filter(user=user, is_active=True, role__in=SSO_ROLES) \
            .exclude(organization__in=password_off).exists():
        return False
    configs = SSOConfig.objects.filter(organization__in=password_off, enabled=True).select_related("organization")
    return any(config.allows_email(user.email) and policy.sso_sign_in_allowed(user, config.organization)
               for config in configs)


#: set on the request when allauth could not hand an e-mail to the mail server
MAIL_FAILED = "lightbox_mail_failed"

#: the roles (organizations.models.Role values) an organization's single sign-on signs in: its
#: staff, never external consultants or patients
SSO_ROLES = ("org_admin", "radiologist", "clinician", "coordinator")


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """E-mail is a notification layer: a mail server that is down or refuses the address
        does not turn the page into a server error (a password reset says, as always, that a
        link was sent if the account exists). The log names the error's type only (its message
        quotes the address); callers that must tell someone read ``MAIL_FAILED`` on the request."""
        try:
            super().send_mail(template_prefix, email, context)
        except (smtplib.SMTPException, OSError) as exc:
            logger.warning("E-mail %s not sent: %s", template_prefix.rsplit("/", 1)[-1], type(exc).__name__)
            request = allauth_context.request
            if request is not None:
                setattr(request, MAIL_FAILED, True)

    def add_message(self, request: HttpRequest, level: int, message_template: str | None = None,
                    message_context: dict[str, Any] | None = None, extra_tags: str = "",
                    message: str | None = None) -> None:
        """No "Successfully signed in" above the page asking for the second factor: the password
        alone does not sign in someone who has (or must set up) one, and the message told them
        they were in while the next page still asked for a code."""
        from django.conf import settings

        from apps.accounts import mfa

        user = (message_context or {}).get("user")
        if (message_template == "account/messages/logged_in.txt" and user is not None
                and settings.LIGHTBOX_MFA_ENFORCED and (mfa.has_second_factor(user) or mfa.mfa_required(user))):
            return
        super().add_message(request, level, message_template, message_context, extra_tags, message)

    def authenticate(self, request: HttpRequest, **credentials: Any) -> Any:
        from apps.accounts.models import User

        if len(credentials.get("email") or "") > User._meta.get_field("email").max_length:
            # no account has such an address; and django-axes would fail storing it (255 characters)
            return None
        user = super().authenticate(request, **credentials)
        if user is not None and password_login_refused(user):
            record(action="auth.password_login_refused", actor=user, outcome="denied", request=request)
            raise forms.ValidationError(
                _("Your organization signs staff in through its single sign-on. "
                  "Use “Sign in with your organization” below."))
        return user


def _apps_from_configs(provider: str | None = None, client_id: str | None = None) -> list:
    from allauth.socialaccount.models import SocialApp

    from apps.accounts.models import SSOConfig

    apps = []
    for config in SSOConfig.objects.filter(enabled=True).select_related("organization"):
        if provider and provider not in ("openid_connect", config.provider_id):
            continue
        if client_id and client_id != config.client_id:
            continue
        apps.append(SocialApp(
            provider="openid_connect", provider_id=config.provider_id, name=config.organization.name,
            client_id=config.client_id, secret=config.client_secret,
            settings={"server_url": config.issuer, "oauth_pkce_enabled": True,
                      "lightbox_org_id": config.organization_id}))
    return apps


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request: HttpRequest, provider: str | None = None, client_id: str | None = None) -> list:
        return _apps_from_configs(provider=provider, client_id=client_id)

    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        return False

    def get_requests_session(self) -> Any:
        """Every request allauth's OpenID Connect provider makes from the server (discovery, token,
        userinfo, JWKS) goes through this session: each destination is checked when the request is
        made and connected to at the address checked (``apps.accounts.outbound``)."""
        from apps.accounts import outbound

        return outbound.pinned_session(super().get_requests_session())

    def on_authentication_error(self, request: HttpRequest, provider: Any, error: Any = None,
                                exception: Any = None, extra_context: Any = None) -> None:
        """A request of the sign-in's return (token, userinfo, JWKS) refused for its destination:
        the refusal page, never allauth's generic error."""
        from apps.accounts import outbound

        if isinstance(exception, outbound.DestinationRefused):
            self.refuse_destination(request, exception, provider.app.settings.get("lightbox_org_id"))
        super().on_authentication_error(request, provider, error=error, exception=exception,
                                        extra_context=extra_context)

    def refuse_destination(self, request: HttpRequest, exception: Any, org_id: int | None) -> None:
        """Refuse a sign-in one of whose requests went to an address the portal does not connect
        to (``outbound.DestinationRefused``); the organization's trail names the host."""
        logger.warning("SSO request to %s refused: %s", exception.host, exception.reason)
        self._refuse(request, "provider_address", org_id, details={"host": exception.host,
                                                                   "refused": exception.reason})

    def _refuse(self, request: HttpRequest, reason: str, org_id: int | None,
                details: dict[str, Any] | None = None) -> None:
        record(action="auth.sso_refused", outcome="denied", request=request, organization_id=org_id,
               actor_label="anonymous", details={"reason": reason, **(details or {})})
        raise ImmediateHttpResponse(render(request, "accounts/sso_refused.html", {"reason": reason}, status=403))

    def _refuse_other_organizations(self, request: HttpRequest, user: Any, provider_id: str,
                                    organization: Any) -> None:
        """The provider named a member of other organizations too, whose data its word does not
        open (``policy.sso_sign_in_allowed``). Recorded in the trail of each organization of
        theirs: the others' admins see that this provider named their member. The page tells
        them to sign in with their password and a second factor; one whose authenticator was
        enrolled in a session this provider opened (``mfa.has_second_factor_outside_sso_of``: it
        does not count) is told that a code of it entered after their password confirms it, and
        to have it reset if it is not theirs (``details.enrolled_through_sso``)."""
        from django.conf import settings

        from apps.accounts import mfa

        through_sso = (settings.LIGHTBOX_MFA_ENFORCED and mfa.has_second_factor(user)
                       and not mfa.has_second_factor_outside_sso_of(user, organization))
        record(action="auth.sso_refused_other_organizations", outcome="denied", request=request, target=user,
               actor_label="anonymous", details={"reason": "other_organizations", "provider": provider_id,
                                                 **({"enrolled_through_sso": True} if through_sso else {})})
        raise ImmediateHttpResponse(render(request, "accounts/sso_refused.html", {
            "reason": "other_organizations_sso_factor" if through_sso else "other_organizations",
            "organization": organization}, status=403))

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        from apps.accounts.models import SSOConfig, User
        from apps.organizations.models import Membership
        from apps.sharing import policy

        provider_id = sociallogin.provider.app.provider_id
        config = SSOConfig.objects.filter(enabled=True).select_related("organization") \
            .filter(organization__slug=provider_id.removeprefix("org-")).first()
        if config is None:
            self._refuse(request, "not_configured", None)
        emails = [e.email.strip().lower() for e in sociallogin.email_addresses if e.verified and e.email]
        if not emails:
            self._refuse(request, "email_not_verified", config.organization_id)
        email = emails[0]
        if not config.allows_email(email):
            self._refuse(request, "domain_not_allowed", config.organization_id)
        user = User.objects.filter(email=email, is_active=True).first()
        if user is None or not Membership.objects.filter(user=user, organization=config.organization,
                                                        is_active=True, role__in=SSO_ROLES).exists():
            self._refuse(request, "no_membership", config.organization_id)
        if sociallogin.is_existing and sociallogin.user.pk != user.pk:
            self._refuse(request, "linked_elsewhere", config.organization_id)
        if not policy.sso_sign_in_allowed(user, config.organization):
            self._refuse_other_organizations(request, user, provider_id, config.organization)
        if not sociallogin.is_existing:
            sociallogin.user = user
            sociallogin.save(request, connect=True)  # link the provider's subject to this account
        request.session["lightbox_active_org"] = str(config.organization.public_id)
        request.lightbox_sso_accepted = config  # remembered on this browser (views.sso_provider_callback)
        record(action="auth.sso_linked", actor=user, organization_id=config.organization_id, target=user,
               request=request, details={"provider": provider_id})
