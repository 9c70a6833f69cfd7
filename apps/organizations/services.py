"""Writes for organizations and memberships: keyword-only, atomic, checked by the policy and
recorded in the audit log."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.services import record
from apps.core.site import site_request
from apps.organizations.models import Membership, Organization, Role
from apps.sharing import policy
from apps.sharing.policy import Action

if TYPE_CHECKING:
    pass

ACTIVE_ORG_SESSION_KEY = "lightbox_active_org"

#: an organization's short name (its SSO provider id ``org-<slug>`` and URLs use it)
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")


def organization_switch(*, request: HttpRequest, organization: Organization) -> None:
    """Make ``organization`` the one the user works in; they must be an active member. Remembered
    on the membership (``last_switched_at``): their next sign-in starts there
    (``organization_at_sign_in``)."""
    if not Membership.objects.filter(user=request.user, organization=organization, is_active=True) \
            .update(last_switched_at=timezone.now()):
        raise ValidationError(_("You are not a member of this organization."))
    request.session[ACTIVE_ORG_SESSION_KEY] = str(organization.public_id)


def organization_at_sign_in(*, user: User, request: HttpRequest) -> None:
    """At sign-in (``user_logged_in``), start in the organization ``user`` last switched to
    (``organization_switch``) when that membership is still active; otherwise, or when they never
    switched, the session is left as it is (the middleware's fallback: their first organization).
    A session that names one already (a sign-in again in the same session) keeps it."""
    if ACTIVE_ORG_SESSION_KEY in request.session:
        return
    # on every sign-in: the two values wanted, read in one query, not two whole rows
    last = (Membership.objects.filter(user_id=user.pk, last_switched_at__isnull=False)
            .order_by("-last_switched_at", "-pk").values_list("is_active", "organization__public_id").first())
    if last is not None and last[0]:
        request.session[ACTIVE_ORG_SESSION_KEY] = str(last[1])


def _ensure_an_admin_remains(membership: Membership, *, new_role: str, new_active: bool) -> None:
    if membership.role != Role.ORG_ADMIN or not membership.is_active:
        return
    if new_role == Role.ORG_ADMIN and new_active:
        return
    others = Membership.objects.filter(  # an admin whose account is deactivated holds nothing (policy)
        organization_id=membership.organization_id, role=Role.ORG_ADMIN, is_active=True, user__is_active=True,
    ).exclude(pk=membership.pk)
    if not others.exists():
        raise ValidationError(_("An organization must keep at least one active organization admin."))


def _without_consent(*, user: User, organization: Organization, role: str) -> str | None:
    """Why an org admin may not give ``user`` the ``role`` in ``organization`` on their own
    (None: they may).

    Security contract: an org admin has power over the accounts of their members (a second-factor
    reset), and more over their staff (the organization's SSO signing them in, password sign-in
    turned off for them). An account that answers to another organization comes under it only with
    its own consent, by accepting an invitation signed in as itself: it is not added (it exists
    and is not a member here: another organization's member, a share's recipient), and a member
    who is also an active member of another organization is not made staff here (a consultant,
    say, or a member deactivated here). A member already staff here may change role. Staff:
    ``SSO_ROLES``, whom the organization's single sign-on signs in."""
    from apps.accounts.adapters import SSO_ROLES

    current = Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True).first()
    if current is None:
        return _("This address already has a Lightbox account. Send them an invitation instead: "
                 "they join when they accept it, signed in to their account.")
    if role in SSO_ROLES and current not in SSO_ROLES and Membership.objects.filter(
            user=user, is_active=True).exclude(organization=organization).exists():
        return _("%(email)s is also a member of another organization: they cannot be made staff here "
                 "without their consent. They keep their role.") % {"email": user.email}
    return None


@transaction.atomic
def membership_update(*, membership: Membership, by: User, role: str, is_active: bool,
                      request: HttpRequest | None = None) -> Membership:
    """Change a member's role or (de)activate them. Org admins only; an org keeps one admin.

    Changes to one organization's memberships run one at a time (its row is locked first): two
    admins demoting each other at once would each see the other still an admin and leave none.
    The second waits, then is judged on what the first did (it may no longer be an admin)."""
    # FOR NO KEY UPDATE: two changes still wait for each other, and an event of the organization
    # committing meanwhile (its foreign key checked with KEY SHARE) is not waited for while it
    # holds the chain this change records into (a deadlock)
    list(Organization.objects.select_for_update(no_key=True).filter(pk=membership.organization_id).values_list("pk"))
    policy.require(by, Action.MANAGE_MEMBERS, membership.organization, request=request)
    if role not in Role.values:
        raise ValidationError(_("Unknown role."))
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if refusal := _without_consent(user=membership.user, organization=membership.organization, role=role):
        raise ValidationError(refusal)
    _ensure_an_admin_remains(membership, new_role=role, new_active=is_active)
    before = {"role": membership.role, "is_active": membership.is_active}
    membership.role = role
    membership.is_active = is_active
    if before["is_active"] != is_active:  # when it ended: the account events still reach this trail a while
        membership.deactivated_at = None if is_active else timezone.now()
    membership.save(update_fields=["role", "is_active", "deactivated_at"])
    after = {"role": role, "is_active": is_active}
    if before != after:
        record(action="membership.updated", actor=by, organization=membership.organization,
               target=membership, request=request, details={"before": before, "after": after})
    if before["is_active"] and not is_active:  # the person left: what was shared with them here ends too
        from apps.sharing.services import grants_end_for_member

        grants_end_for_member(organization=membership.organization, user=membership.user, by=by, request=request)
    return membership


@transaction.atomic
def membership_add(*, organization: Organization, by: User, email: str, role: str,
                   full_name: str = "", request: HttpRequest | None = None) -> tuple[Membership, bool]:
    """Add a person to the organization with a role. Returns (membership, account_created).

    A new account gets no usable password: the person sets one through the password-reset
    link that the caller sends them (e-mail carries only that link).

    Security contract: an account that already exists and is not a member here (a member of
    another organization, a share's recipient) is not added (``ValidationError``): it joins only
    by accepting an invitation, signed in as itself. An org admin has power over the accounts of
    their members (a second-factor reset, the organization's SSO signing them in, password
    sign-in turned off for its staff); added without their consent, another hospital's staff
    would come under it, and an admin with an SSO provider of their own could sign in as them.
    A member who was deactivated here is taken back as before, but as staff only if they were
    staff here or are a member of no other organization (``_without_consent``).
    """
    policy.require(by, Action.MANAGE_MEMBERS, organization, request=request)
    user = User.objects.filter(email=email.strip().lower()).first()
    if user is not None and (refusal := _without_consent(user=user, organization=organization, role=role)):
        raise ValidationError(refusal)
    return _membership_insert(organization=organization, by=by, email=email, role=role, full_name=full_name,
                              request=request)


def _membership_insert(*, organization: Organization, by: User | None, email: str, role: str,
                       full_name: str = "", request: HttpRequest | None = None) -> tuple[Membership, bool]:
    """The one way a member is added (``membership_add``, ``organization_create``); callers
    check the rights."""
    if role not in Role.values:
        raise ValidationError(_("Unknown role."))
    email = email.strip().lower()
    user = User.objects.filter(email=email).first()
    created = user is None
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=email, password=None, full_name=full_name.strip())
        except IntegrityError:  # the same address added at this moment (a double click): theirs is it
            user = User.objects.get(email=email)
            created = False
    membership, made = Membership.objects.get_or_create(
        user=user, organization=organization, defaults={"role": role},
    )
    if not made:
        if membership.is_active:
            raise ValidationError(_("This person is already a member."))
        membership.is_active = True
        membership.role = role
        membership.deactivated_at = None  # active again: no longer a former member (membership_update)
        membership.save(update_fields=["is_active", "role", "deactivated_at"])
    record(action="membership.added", actor=by, organization=organization, target=membership,
           request=request, details={"role": role, "account_created": created})
    return membership, created


def password_link_send(*, user: User, request: HttpRequest | None = None) -> bool:
    """E-mail ``user`` allauth's one-time link to set a password (the mail carries only that
    link). Without a request (a management command) the link points at the portal's own address
    (``apps.core.site``), as invitation links do. False when the mail server could not take it
    (``AccountAdapter.send_mail``): the person can ask for a link later with "Forgot your
    password?"."""
    from allauth.account.forms import ResetPasswordForm

    if request is None:
        request = site_request()
    from allauth.core import context

    from apps.accounts.adapters import MAIL_FAILED

    form = ResetPasswordForm(data={"email": user.email})
    if not form.is_valid():
        return False
    with context.request_context(request):  # allauth builds the link from its current request
        form.save(request)
    return not getattr(request, MAIL_FAILED, False)


def organization_create(*, slug: str, name: str, admin_email: str, admin_name: str = "",
                        request: HttpRequest | None = None) -> tuple[Organization, Membership, bool]:
    """Create an organization and make ``admin_email`` its first org admin; returns
    (organization, membership, account_created).

    Security contract: an operator's act (``manage.py organization_create``), not a portal one:
    no role of any organization may create another, so there is no policy action and no user
    actor (the events name the system). The first admin is added the way an org admin adds staff
    (``_membership_insert``: a member first, a new account with no usable password, the caller
    sends the link to set one); they then sign in with that password (password sign-in is never
    turned off for org admins), enrol their second factor, and configure SSO and members in the
    portal. A taken slug is refused (``ValidationError``) with nothing changed, so a second run
    is harmless. Recorded: ``organization.created`` and ``membership.added`` in the new
    organization's chain."""
    slug = (slug or "").strip().lower()
    name = (name or "").strip()
    admin_email = (admin_email or "").strip().lower()
    errors: dict[str, str] = {}
    if not slug or len(slug) > Organization._meta.get_field("slug").max_length or not _SLUG.fullmatch(slug):
        errors["slug"] = _("Enter a short name of 1 to 60 lower-case letters, digits and hyphens, starting "
                           "with a letter or digit.")
    if not name or len(name) > Organization._meta.get_field("name").max_length:
        errors["name"] = _("Enter the organization's name (at most 200 characters).")
    try:
        validate_email(admin_email)
        if len(admin_email) > User._meta.get_field("email").max_length:
            raise ValidationError("too long")
    except ValidationError:
        errors["admin_email"] = _("Enter a valid e-mail address for the first org admin.")
    admin_name = (admin_name or "").strip()
    if len(admin_name) > User._meta.get_field("full_name").max_length:
        errors["admin_name"] = _("Enter the first org admin's full name in at most 200 characters.")
    if errors:
        raise ValidationError(errors)
    if User.objects.filter(email=admin_email, is_active=False).exists():
        raise ValidationError({"admin_email": _("The account with this address is deactivated and cannot sign in; "
                                                "choose another first org admin.")})
    try:
        with transaction.atomic():
            if Organization.objects.filter(slug=slug).exists():
                raise ValidationError({"slug": _("An organization with the short name %(slug)s already exists; "
                                                 "nothing was changed.") % {"slug": slug}})
            organization = Organization.objects.create(slug=slug, name=name)
            record(action="organization.created", actor_label="system", organization=organization,
                   target=organization, request=request, details={"slug": slug})
            membership, created = _membership_insert(organization=organization, by=None, email=admin_email,
                                                     role=Role.ORG_ADMIN, full_name=admin_name,
                                                     request=request)
    except IntegrityError:  # the same slug created meanwhile by another run
        raise ValidationError({"slug": _("An organization with the short name %(slug)s already exists; "
                                         "nothing was changed.") % {"slug": slug}}) from None
    return organization, membership, created


@transaction.atomic
def organization_update_policy(*, organization: Organization, by: User, values: dict[str, object],
                               request: HttpRequest | None = None) -> Organization:
    policy.require(by, Action.MANAGE_ORGANIZATION, organization, request=request)
    changed = {}
    for field, value in values.items():
        if getattr(organization, field) != value:
            changed[field] = {"before": getattr(organization, field), "after": value}
            setattr(organization, field, value)
    if changed:
        organization.save(update_fields=list(changed))
        record(action="organization.policy_changed", actor=by, organization=organization,
               target=organization, request=request, details=changed)
    return organization
