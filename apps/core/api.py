"""API base classes. The tenant-scoped queryset is the only path to rows."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from rest_framework.viewsets import GenericViewSet


class OrgScopedViewSet(GenericViewSet):
    """Subclasses set ``model`` and narrow with ``refine_queryset``; they may not override
    ``get_queryset``, so every row they serve passed ``visible_to(request.user)``.
    Rows of other organizations are 404, never 403."""

    model: ClassVar[type[models.Model]]
    lookup_field = "public_id"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: narrow with refine_queryset(), do not override get_queryset()")

    def refine_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        return queryset

    def get_queryset(self) -> models.QuerySet:
        return self.refine_queryset(self.model.objects.visible_to(self.request.user))
