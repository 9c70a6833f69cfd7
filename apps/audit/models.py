from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.organizations.scoping import OrgScopedQuerySet


class Outcome(models.TextChoices):
    ALLOWED = "allowed", "allowed"
    DENIED = "denied", "denied"


class AuditEventQuerySet(OrgScopedQuerySet["AuditEvent"]):
    visible_action = "view_audit"


class AuditEvent(models.Model):
    """One thing that happened. Details hold ids and figures, never patient names.

    Minimal for now; the audit issue makes it append-only and hash-chained, adds search and
    export. Every feature writes through ``apps.audit.services.record``.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    organization = models.ForeignKey("organizations.Organization", null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=200, blank=True)  # "system", a link token id, ...
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    # public ids, not foreign keys: the trail outlives the rows it speaks of
    case_ref = models.UUIDField(null=True, blank=True, db_index=True)
    study_ref = models.UUIDField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.ALLOWED)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"
