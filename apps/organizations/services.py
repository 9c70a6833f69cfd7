"""Writes for organizations and memberships: keyword-only, atomic, checked by the policy and
recorded in the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.services import record
from apps.organizations.models import Membership, Organization, Role
from apps.sharing import policy
from apps.sharing.policy import Action

if TYPE_CHECKING:
    pass

ACTIVE_ORG_SESSION_KEY = "lightbox_active_org"


def organization_switch(*, request: HttpRequest, organization: Organization) -> None:
    """Make ``organization`` the one the user works in; they must be an active member."""
    if not Membership.objects.filter(user=request.user, organization=organization, is_active=True).exists():
        raise ValidationError(_("You are not a member of this organization."))
    request.session[ACTIVE_ORG_SESSION_KEY] = str(organization.public_id)


def _ensure_an_admin_remains(membership: Membership, *, new_role: str, new_active: bool) -> None:
    if membership.role != Role.ORG_ADMIN or not membership.is_active:
        return
    if new_role == Role.ORG_ADMIN and new_active:
        return
    others = Membership.objects.filter(
        organization_id=membership.organization_id, role=Role.ORG_ADMIN, is_active=True,
    ).exclude(pk=membership.pk)
    if not others.exists():
        raise ValidationError(_("An organization must keep at least one active organization admin."))


@transaction.atomic
def membership_update(*, membership: Membership, by: User, role: str, is_active: bool,
                      request: HttpRequest | None = None) -> Membership:
    """Change a member's role or (de)activate them. Org admins only; an org keeps one admin."""
    policy.require(by, Action.MANAGE_MEMBERS, membership.organization, request=request)
    if role not in Role.values:
        raise ValidationError(_("Unknown role."))
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _ensure_an_admin_remains(membership, new_role=role, new_active=is_active)
    before = {"role": membership.role, "is_active": membership.is_active}
    membership.role = role
    membership.is_active = is_active
    membership.save(update_fields=["role", "is_active"])
    after = {"role": role, "is_active": is_active}
    if before != after:
        record(action="membership.updated", actor=by, organization=membership.organization,
               target=membership, request=request, details={"before": before, "after": after})
    return membership


@transaction.atomic
def membership_add(*, organization: Organization, by: User, email: str, role: str,
                   full_name: str = "", request: HttpRequest | None = None) -> tuple[Membership, bool]:
    """Add a person to the organization with a role. Returns (membership, account_created).

    A new account gets no usable password: the person sets one through the password-reset
    link that the caller sends them (e-mail carries only that link).
    """
    policy.require(by, Action.MANAGE_MEMBERS, organization, request=request)
    if role not in Role.values:
        raise ValidationError(_("Unknown role."))
    email = email.strip().lower()
    user = User.objects.filter(email=email).first()
    created = user is None
    if user is None:
        user = User.objects.create_user(email=email, password=None, full_name=full_name.strip())
    membership, made = Membership.objects.get_or_create(
        user=user, organization=organization, defaults={"role": role},
    )
    if not made:
        if membership.is_active:
            raise ValidationError(_("This person is already a member."))
        membership.is_active = True
        membership.role = role
        membership.save(update_fields=["is_active", "role"])
    record(action="membership.added", actor=by, organization=organization, target=membership,
           request=request, details={"role": role, "account_created": created})
    return membership, created


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
