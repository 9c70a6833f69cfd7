from __future__ import annotations

import uuid

from django.db import models


class PublicIdModel(models.Model):
    """Rows are addressed in URLs and payloads by a random UUID, never by their sequential id."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
