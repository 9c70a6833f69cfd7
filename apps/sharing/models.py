"""Grants: who may do what with which case, until when. Minimal core; the sharing issue adds
study scope, groups, link tokens, templates, download limits and usage on this same model."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.models import PublicIdModel
from apps.organizations.scoping import OrgScopedQuerySet


class Permission(models.TextChoices):
    VIEW = "view", _("View")
    DOWNLOAD_PREVIEW = "download_preview", _("Download preview")
    DOWNLOAD_ORIGINAL = "download_original", _("Download original")
    RESHARE = "reshare", _("Share onward")


class GrantSource(models.TextChoices):
    SHARE = "share", _("Share")
    BOARD = "board", _("Tumor board")
    INVITATION = "invitation", _("Invitation")


class GrantQuerySet(OrgScopedQuerySet["Grant"]):
    def live(self, now: datetime | None = None) -> GrantQuerySet:
        """Not revoked, not expired, on an open case. Checked on every request: no cache."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=now, starts_at__lte=now, case__status="open")


class Grant(PublicIdModel):
    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="grants")
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="grants")
    grantee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="grants")
    permissions = models.JSONField(default=list)  # a list of Permission values
    source = models.CharField(max_length=16, choices=GrantSource.choices, default=GrantSource.SHARE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    starts_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    revoke_reason = models.CharField(max_length=64, blank=True)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["grantee", "expires_at"])]

    def __str__(self) -> str:
        return f"Grant {self.public_id}"

    def is_live(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return (self.revoked_at is None and self.starts_at <= now < self.expires_at
                and self.case.status == "open")
