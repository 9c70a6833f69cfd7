"""The e-mailed link of "Sign in with your organization" (``views.sso_start``).

The page answers every address alike (same status, same words): were staff sent on to their
provider and others told that no organization signs them in, anyone could learn which addresses
are a hospital's staff without signing in (found by a reviewer). Nor may every address of a domain
be sent to the provider of an organization naming it: several organizations may name one domain,
and an address goes only to the provider of an organization where it is active staff
(``views._sso_config_for``), never to another's, where its owner would type their hospital
password. So the way on is e-mailed: an address staff of an organization whose single sign-on takes
it gets a link to that organization's provider; any other gets nothing, and the page says to sign
in with the password otherwise. The link names the account and the organization's single sign-on,
signed (``SSO_LINK_MINUTES``); opening it checks again that the address is still that organization's
staff. It signs nobody in: the provider does."""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from apps.accounts.models import SSOConfig, User

logger = logging.getLogger(__name__)

#: how long an e-mailed link to an organization's sign-in works
SSO_LINK_MINUTES = 30
_SALT = "lightbox.accounts.sso-link"


def sso_link_url(*, user: User, config: SSOConfig, request: HttpRequest | None) -> str:
    token = signing.dumps({"u": user.pk, "c": config.pk}, salt=_SALT, compress=True)
    path = reverse("accounts:sso_continue", kwargs={"token": token})
    return request.build_absolute_uri(path) if request is not None else path


def sso_link_send(*, user: User, config: SSOConfig, request: HttpRequest | None) -> None:
    """E-mail ``user`` the link on to ``config``'s provider, in their language."""
    from apps.accounts.services import language_of

    context = {"organization": config.organization, "url": sso_link_url(user=user, config=config, request=request),
               "minutes": SSO_LINK_MINUTES}
    with translation.override(language_of(user)):
        subject = render_to_string("accounts/email/sso_link_subject.txt", context).strip()
        text = render_to_string("accounts/email/sso_link_message.txt", context)
        html = render_to_string("accounts/email/sso_link_message.html", context)
    message = EmailMultiAlternatives(subject=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + subject, body=text,
                                     to=[user.email])
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        # as for a password reset: the page says what it says for every address, never an error
        # that only a staff address would get; the log names the error's type only
        logger.warning("E-mail sso_link not sent: %s", type(exc).__name__)


def sso_link_read(token: str, config_for: Any) -> tuple[User, SSOConfig] | None:
    """The account and single sign-on a link names, if it is genuine, not older than
    SSO_LINK_MINUTES, and the account still active staff of that organization (``config_for``,
    ``views._sso_config_for``, takes it to that same configuration); None otherwise."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=SSO_LINK_MINUTES * 60)
    except signing.BadSignature:  # SignatureExpired included
        return None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None:
        return None
    config = config_for(user.email.lower())
    if config is None or config.pk != data.get("c"):
        return None
    return user, config
