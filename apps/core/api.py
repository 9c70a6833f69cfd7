"""API base classes. The tenant-scoped queryset is the only path to rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from django.db import models
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.viewsets import GenericViewSet

from apps.core.forms import datetime_in_range

#: every API route is under this prefix (portal/urls.py): its clients get JSON, never a page
API_PREFIX = "/api/"


def is_api_request(request) -> bool:
    """An API request (JSON answers, refusals included), as opposed to a page's."""
    return request.path.startswith(API_PREFIX)


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


def exception_handler(exc: Exception, context: dict) -> Any:
    """REST_FRAMEWORK's EXCEPTION_HANDLER: DRF's, but a Django ``Http404`` (``get_object`` finding
    no visible row) is answered with DRF's own translated "Not found." and nothing else. DRF passes
    the Http404's message on, and ``get_object_or_404`` writes "No Grant matches the given query.":
    English in every language, naming the model, and unlike the 404 a malformed id gets."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    return drf_exception_handler(exc, context)


#: keys a request body may carry beside its serializer's fields: an HTML form's CSRF token
_FORM_KEYS = frozenset({"csrfmiddlewaretoken"})


class StrictSerializer(serializers.Serializer):
    """A request body's serializer that refuses a key it does not know (400, "Unknown field."
    beside that key, with the other fields' errors), where DRF drops it without a word: a
    misspelt ``hours`` (``hour``), or ``expires_at`` sent to create, made a share with the
    template's defaults that its sender believed they had limited."""

    unknown_message = _("Unknown field.")

    def to_internal_value(self, data: Any) -> Any:
        unknown = {}
        if isinstance(data, Mapping):
            unknown = {str(key)[:100]: [self.unknown_message] for key in data
                       if key not in self.fields and key not in _FORM_KEYS}
        try:
            value = super().to_internal_value(data)
        except exceptions.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise exceptions.ValidationError({**unknown, **exc.detail}) from exc
            raise
        if unknown:
            raise exceptions.ValidationError(unknown)
        return value


class PublicIdField(serializers.UUIDField):
    """A ``public_id`` in a request body: a UUID written as a string, as the API writes them.
    Anything else (``true``, a number, a list, an object) is a 400 beside the field ("Must be a
    valid UUID."). DRF's UUIDField takes a JSON number as the UUID of that integer value, and
    ``true`` as 1, so a wrong type named no row and was answered 404 as if it were an id."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str | uuid.UUID):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class BoundedDateTimeField(serializers.DateTimeField):
    """A DateTimeField that answers 400 ("Datetime value out of range.") for a time outside
    apps.core.forms.DATETIME_FIRST_YEAR..DATETIME_LAST_YEAR in UTC, including one DRF itself fails
    to convert (9999-12-31 without an offset west of UTC raises OverflowError inside DRF)."""

    def to_internal_value(self, value: Any):
        try:
            result = super().to_internal_value(value)
        except OverflowError:
            self.fail("overflow")
        if not datetime_in_range(result):
            self.fail("overflow")
        return result


_ERROR = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
_INVALID = {"type": "object", "description": "Messages by field name; `detail` for the request as a whole.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}}}
_ERROR_RESPONSES = {
    "400": ("Invalid request: what is wrong, by field.", "Invalid", lambda op: "requestBody" in op),
    "403": ("Not signed in, not allowed, or a fresh second factor needed (`step_up_required`).", "Error",
            lambda op: True),
    "404": ("No such object here (other organizations' objects included), or no such page.", "Error",
            lambda op: True),
}


def _strict_components() -> set[str]:
    """The schema's component names of StrictSerializer bodies (drf-spectacular drops the
    ``Serializer`` suffix)."""
    found, todo = set(), [StrictSerializer]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub.__name__.removesuffix("Serializer"))
            todo.append(sub)
    return found


def schema_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular post-processing hook: every operation documents the errors it answers with
    (403 and 404 everywhere, 400 where it takes a body), with their shapes, so a client written
    from the schema expects them; a body that refuses unknown fields (StrictSerializer) says so
    (``additionalProperties: false``)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _ERROR)
    schemas.setdefault("Invalid", _INVALID)
    for name in _strict_components() & schemas.keys():
        schemas[name]["additionalProperties"] = False
    for operations in result.get("paths", {}).values():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            for code, (description, schema, applies) in _ERROR_RESPONSES.items():
                if applies(op) and code not in responses:
                    responses[code] = {"description": description, "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return result
