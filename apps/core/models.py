from __future__ import annotations

import uuid

from django.db import models

from apps.core import i18n


class PublicIdModel(models.Model):
    """Rows are addressed in URLs and payloads by a random UUID, never by their sequential id."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class Explained(models.Model):
    """A row that may say why (a file skipped, a rendition not made, an export failed). The reason
    is kept in English, and with its message ids (``apps.core.i18n``) so that a page shows it in
    the reader's language. Write both with ``**i18n.explained(text)``."""

    reason = models.CharField(max_length=300, blank=True)
    reason_parts = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        abstract = True

    @property
    def reason_shown(self) -> str:
        return i18n.translate(i18n.restore(self.reason, self.reason_parts))


class UnsentTask(models.Model):
    """A task whose send to the broker failed after its rows were committed (``apps.core.queue``):
    sent again by the periodic sweep once the broker answers. Its arguments are row ids only."""

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    error = models.CharField(max_length=100, blank=True, help_text="the send's exception type, never its message")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"UnsentTask {self.task}"
