"""Open viewer sessions, so a periodic task can close the ones whose tab vanished without a beacon."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ViewerSession(models.Model):
    """One opened viewer page. ``key`` is the session id the page carries (and the audit events'
    ``details.session``); ``closed_at`` is set once, by the beacon, the idle sweep or a sign-out, with a
    conditional UPDATE, so viewer.closed is recorded exactly once."""

    key = models.CharField(max_length=32, unique=True)
    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE, related_name="+")
    study = models.ForeignKey("imaging.Study", null=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    actor_label = models.CharField(max_length=200, blank=True)  # "link:<id>" for a link holder
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=16, blank=True)  # "closed" (beacon), "timeout" or "signed_out"

    class Meta:
        indexes = [models.Index(fields=["last_seen_at"], condition=Q(closed_at__isnull=True),
                                name="viewer_session_open_idle")]

    def __str__(self) -> str:
        return f"ViewerSession {self.key}"
