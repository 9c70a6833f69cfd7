"""Grant writes. Every feature that gives or takes access (shares, tumor boards, invitations,
case closing) goes through these, so the rules and the audit trail live in one place."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.services import record
from apps.sharing.models import Grant, GrantSource, Permission

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.accounts.models import User
    from apps.cases.models import Case


@transaction.atomic
def grant_create(*, case: Case, grantee: User | None, permissions: Iterable[str], expires_at: datetime,
                 by: User | None, source: str = GrantSource.SHARE, starts_at: datetime | None = None,
                 request: HttpRequest | None = None) -> Grant:
    """Give ``grantee`` ``permissions`` on ``case`` until ``expires_at``.

    The caller has already decided, through apps.sharing.policy, that ``by`` may share; this
    function checks the grant itself is sound: an open case, known permissions, a future expiry.
    """
    permissions = sorted(set(permissions))
    unknown = set(permissions) - set(Permission.values)
    if unknown or not permissions:
        raise ValidationError(_("Unknown or missing permissions."))
    if not case.is_open:
        raise ValidationError(_("This case is closed; nothing can be shared from it."))
    starts_at = starts_at or timezone.now()
    if expires_at <= starts_at:
        raise ValidationError(_("The expiry must be later than the start."))
    grant = Grant.objects.create(organization_id=case.organization_id, case=case, grantee=grantee,
                                 permissions=permissions, source=source, created_by=by,
                                 starts_at=starts_at, expires_at=expires_at)
    record(action="grant.created", actor=by, organization_id=case.organization_id, target=grant, case=case,
           request=request, details={"permissions": permissions, "source": source,
                                     "expires_at": expires_at.isoformat(),
                                     "grantee": str(grantee.public_id) if grantee else None})
    return grant


@transaction.atomic
def grants_revoke(*, grants: Iterable[Grant], by: User | None, reason: str,
                  request: HttpRequest | None = None) -> int:
    """Revoke every still-unrevoked grant given. Takes effect on the next request (policy reads
    grants live). Returns how many were revoked; an already revoked grant stays as it was."""
    now = timezone.now()
    ids = [g.pk for g in grants]
    to_revoke = list(Grant.objects.select_for_update().filter(pk__in=ids, revoked_at__isnull=True)
                     .select_related("case"))
    for grant in to_revoke:
        grant.revoked_at = now
        grant.revoked_by = by
        grant.revoke_reason = reason
        grant.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        record(action="grant.revoked", actor=by, organization_id=grant.organization_id, target=grant,
               case=grant.case, request=request, details={"reason": reason})
    return len(to_revoke)
