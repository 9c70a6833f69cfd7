"""Form fields shared by the apps' forms."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django import forms
from django.db import connection, models
from django.utils.translation import gettext_lazy as _

#: the years a typed date and time may fall in (UTC). Far wider than any share, expiry or meeting,
#: and narrow enough that adding the longest expiry to it stays a date the database can store and
#: Python can compute with (year 9999 in one time zone is year 10000 in UTC: PostgreSQL stores it,
#: then every page that reads the row fails).
DATETIME_FIRST_YEAR = 1900
DATETIME_LAST_YEAR = 2999

#: the longest uploaded file name kept whole (characters). Longer names are stored shortened, their
#: extension kept. A name far longer (past roughly 900 bytes) cannot be read at all: Django reads at
#: most 1,024 bytes of a multipart part's headers (MAX_TOTAL_HEADER_SIZE) and refuses the whole
#: request, so the page it gets (apps.core.views.bad_request) asks for a name of at most this
#: length, which fits even at 4 bytes a character.
UPLOAD_NAME_MAX = 200


def datetime_in_range(value: datetime) -> bool:
    """Whether an aware ``value`` lies within DATETIME_FIRST_YEAR..DATETIME_LAST_YEAR in UTC."""
    try:
        year = value.astimezone(UTC).year
    except OverflowError:  # 0001-01-01 in a zone east of UTC, 9999-12-31 west of it
        return False
    return DATETIME_FIRST_YEAR <= year <= DATETIME_LAST_YEAR


def require_datetimes_in_range(*values: datetime | None) -> None:
    """Each given date and time lies within DATETIME_FIRST_YEAR..DATETIME_LAST_YEAR in UTC, as the
    forms' and the API's BoundedDateTimeField require; for services, so that every caller (a shell,
    seed_demo, the next feature) gets a ValidationError: a later one overflows when an expiry is
    counted from it, or is stored as a year PostgreSQL keeps but cannot give back (every page
    listing the row then fails)."""
    from django.core.exceptions import ValidationError
    from django.utils.translation import gettext

    if any(v is not None and not (isinstance(v, datetime) and datetime_in_range(v)) for v in values):
        raise ValidationError(gettext("Dates and times must be between the years %(first)s and %(last)s.")
                              % {"first": DATETIME_FIRST_YEAR, "last": DATETIME_LAST_YEAR})


class _InYearRange:
    """A date or date-and-time field that refuses, beside the field, a value out of
    DATETIME_FIRST_YEAR..DATETIME_LAST_YEAR (``in_range`` says how the field reads it)."""

    def in_range(self, value: Any) -> bool:
        raise NotImplementedError

    def to_python(self, value: Any) -> Any:
        result = super().to_python(value)
        if result is not None and not self.in_range(result):
            raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range",
                                        params={"first": DATETIME_FIRST_YEAR, "last": DATETIME_LAST_YEAR})
        return result


class BoundedDateTimeField(_InYearRange, forms.DateTimeField):
    """A DateTimeField that refuses, beside the field, a date and time out of
    DATETIME_FIRST_YEAR..DATETIME_LAST_YEAR (a typo such as 9999 or 0001 in the year)."""

    default_error_messages = {
        "out_of_range": _("Enter a date and time between the years %(first)s and %(last)s."),
    }

    def in_range(self, value: datetime) -> bool:
        return datetime_in_range(value)


class BoundedDateField(_InYearRange, forms.DateField):
    """A DateField that refuses, beside the field, a date out of DATETIME_FIRST_YEAR..DATETIME_LAST_YEAR:
    a search from such a day is turned into times of day, and 9999-12-31 has no next day while
    0001-01-01 west of UTC has no time in UTC (OverflowError, a 500)."""

    default_error_messages = {
        "out_of_range": _("Enter a date between the years %(first)s and %(last)s."),
    }

    def in_range(self, value: date) -> bool:
        return DATETIME_FIRST_YEAR <= value.year <= DATETIME_LAST_YEAR


class BoundedModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """A ModelMultipleChoiceField that refuses, as an invalid choice, an integer id the key column
    cannot hold (``99999999999999999999``). Django checks each id's type but not its range, and the
    ``id IN (...)`` query then fails on SQLite (OverflowError): a 500 instead of the error beside
    the field. (A single ModelChoiceField needs no such check: Django's ``exact`` lookup finds no
    row for such an id.)"""

    def clean(self, value: Any) -> Any:
        meta = self.queryset.model._meta
        key = meta.get_field(self.to_field_name) if self.to_field_name else meta.pk
        if isinstance(value, list | tuple) and isinstance(key, models.IntegerField):
            low, high = connection.ops.integer_field_range(key.get_internal_type())
            for item in value:
                try:
                    number = int(item)  # as the key column reads it
                except (TypeError, ValueError):
                    continue  # not an integer: Django's own check refuses it
                if not low <= number <= high:
                    raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                                params={"value": item})
        return super().clean(value)
