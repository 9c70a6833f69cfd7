"""Form fields shared by the apps' forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django import forms
from django.db import connection, models
from django.forms.models import ModelChoiceIteratorValue
from django.forms.utils import ErrorDict
from django.http import Http404, JsonResponse
from django.utils.functional import cached_property
from django.utils.translation import gettext, ngettext
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


#: how far in the past a time that must lie ahead (a link's "not before", a new tumor board's
#: meeting) may be and still be taken as now: the minute being typed (a datetime-local field has
#: no seconds) and the share page's review before its confirmation
PAST_GRACE = timedelta(minutes=5)


def is_past(value: datetime | None, *, now: datetime | None = None) -> bool:
    """Whether ``value`` (aware) is further in the past than ``PAST_GRACE``; False for None."""
    from django.utils import timezone

    return value is not None and value < (now or timezone.now()) - PAST_GRACE


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


#: the longest search text a list of choices reads (characters); the rest of a longer one is ignored
CHOICES_SEARCH_MAX = 200
#: how many matches of the search a searched list of choices shows, beside those already ticked
CHOICES_SHOWN = 50
#: past this many choices, a list has a box to search it (forms.js narrows a plain one in the browser)
CHOICES_SEARCH_FROM = 12
#: the name of the buttons that search a list of choices: the form is drawn again, nothing is saved
CHOICES_SEARCH_BUTTON = "search_choices"


def search_text(value: Any) -> str:
    """A search text as typed, made safe to query with: NUL characters (which PostgreSQL refuses in
    a text) dropped, spaces at either end trimmed, at most CHOICES_SEARCH_MAX characters."""
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "").strip()[:CHOICES_SEARCH_MAX].strip()


@dataclass
class ChoiceSearch:
    """What a searched list of choices shows: the choices already ticked (always, whatever is
    searched, so that nothing chosen is lost), then at most ``size`` of the others that match the
    search text ``q``, of ``total`` that do."""

    q: str
    ticked: list[models.Model]
    matches: list[models.Model]
    total: int
    size: int

    @property
    def rows(self) -> list[models.Model]:
        return [*self.ticked, *self.matches]

    @property
    def more(self) -> bool:
        return self.total > len(self.matches)

    @property
    def offered(self) -> bool:
        """Whether the list has a search box: it is long, or searched already."""
        return bool(self.q) or self.more or len(self.rows) > CHOICES_SEARCH_FROM

    @property
    def status(self) -> str:
        """Says how many match and how many are shown ("" when every choice is shown)."""
        shown, total = len(self.matches), self.total
        if self.more and self.q:
            return gettext("Showing %(shown)d of %(total)d matching; narrow the search.") % {
                "shown": shown, "total": total}
        if self.more:
            return gettext("Showing %(shown)d of %(total)d; search to find the others.") % {
                "shown": shown, "total": total}
        if self.q and not total:
            return gettext("No other choice matches “%(q)s”.") % {"q": self.q}
        if self.q:
            return ngettext("%(total)d choice matches the search.", "%(total)d choices match the search.",
                            total) % {"total": total}
        return ""


class SearchedBoundField(forms.BoundField):
    """A searched list of choices in a form: its choices are the field's ``search`` for the text
    sent under ``<name>_q`` and what is ticked (sent, or the initial ones when the form is not)."""

    @property
    def search_name(self) -> str:
        return f"{self.html_name}_q"

    @property
    def search_button(self) -> str:
        return CHOICES_SEARCH_BUTTON

    @cached_property
    def search(self) -> ChoiceSearch:
        q = search_text(self.form.data.get(self.search_name)) if self.form.is_bound else ""
        found = self.field.search(q=q, ticked=self.value() or [])
        self.field.widget.choices = [self.field.choice_of(row) for row in found.rows]
        if not isinstance(self.field, forms.ModelMultipleChoiceField) and self.field.empty_label is not None:
            # one choice that may be none (a field made with blank=True): "none" first, whatever
            # the search (js/forms.js keeps it too)
            self.field.widget.choices.insert(0, ("", self.field.empty_label))
        return found

    @cached_property
    def subwidgets(self) -> list[Any]:
        self.search  # noqa: B018 -- the choices to draw are the search's, never the whole queryset
        return super().subwidgets

    def as_widget(self, *args: Any, **kwargs: Any) -> Any:
        self.search  # noqa: B018 -- as subwidgets: {{ field }} draws the search's choices too
        return super().as_widget(*args, **kwargs)


class SearchedChoices:
    """A list of choices too long to draw whole (an organization's open cases, its members): the
    form draws the choices ticked, then at most CHOICES_SHOWN of those that ``match`` the search
    text (a function from the text to a Q), and says how many more match. Validation still
    accepts any row of ``queryset``, drawn or not; a row outside it is an invalid choice.
    ``search_url`` is where the page's script asks for matches as the search text is typed.
    Mixed into a model choice field: several choices (SearchedModelMultipleChoiceField) or one
    (SearchedModelChoiceField)."""

    def __init__(self, *args: Any, match: Any, search_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.match, self.search_url = match, search_url

    def get_bound_field(self, form: forms.BaseForm, field_name: str) -> SearchedBoundField:
        return SearchedBoundField(form, self, field_name)

    def choice_of(self, obj: models.Model) -> tuple[ModelChoiceIteratorValue, str]:
        return ModelChoiceIteratorValue(self.prepare_value(obj), obj), self.label_from_instance(obj)

    def search(self, *, q: str, ticked: Any, size: int | None = None) -> ChoiceSearch:
        """The rows ticked (those of ``ticked``, ids or rows, that ``queryset`` holds) and the first
        ``size`` others matching ``q``: three queries, however many rows there are."""
        q, size = search_text(q), CHOICES_SHOWN if size is None else size
        ids = self._ids(ticked)
        ticked_rows = list(self.queryset.filter(pk__in=ids)) if ids else []
        others = self.queryset.filter(self.match(q)).exclude(pk__in=[row.pk for row in ticked_rows])
        return ChoiceSearch(q=q, ticked=ticked_rows, matches=list(others[:size]), total=others.count(), size=size)

    def answer(self, *, q: str, ticked: Any) -> dict[str, Any]:
        """What a choices endpoint answers the form's script (static/js/forms.js) as the search
        text is typed: the matches of ``q`` other than those ``ticked``, as the form would draw
        them, how many are shown of how many match, and the status line."""
        found = self.search(q=q, ticked=ticked)
        choices = [{"value": str(value), "label": label} for value, label in map(self.choice_of, found.matches)]
        return {"choices": choices, "shown": len(found.matches), "total": found.total, "status": found.status}

    def _ids(self, values: Any) -> list[int]:
        """The ids among ``values`` (rows, or ids as sent) that the key column can hold; others are
        left out (they are no row to show; validation refuses them)."""
        if isinstance(values, str | int) or not hasattr(values, "__iter__"):
            values = [values]
        low, high = connection.ops.integer_field_range(self.queryset.model._meta.pk.get_internal_type())
        ids = []
        for value in values:
            value = getattr(value, "pk", value)
            try:
                number = int(value)
            except (TypeError, ValueError):
                continue
            if low <= number <= high:
                ids.append(number)
        return ids


class SearchedModelMultipleChoiceField(SearchedChoices, BoundedModelMultipleChoiceField):
    """Several choices of a searched list (SearchedChoices): a tumor board's cases, its
    participants. Drawn as checkboxes (give it CheckboxSelectMultiple)."""


class SearchedModelChoiceField(SearchedChoices, forms.ModelChoiceField):
    """One choice of a searched list (SearchedChoices): a tumor board's host among an
    organization's members. Drawn as radio buttons, the one chosen first, then the matches of
    the search; any row of ``queryset`` is accepted, drawn or not."""

    widget = forms.RadioSelect


class SearchedChoicesForm(forms.BaseForm):
    """A form with searched lists of choices: a press of one of their Search buttons (named
    CHOICES_SEARCH_BUTTON) draws the form again as it was sent, ticks and text kept, without
    checking or saving it (``is_valid()`` is False, and no error is shown)."""

    @property
    def searching(self) -> bool:
        return self.is_bound and CHOICES_SEARCH_BUTTON in self.data

    def full_clean(self) -> None:
        if self.searching:
            self._errors, self.cleaned_data = ErrorDict(), {}
            return
        super().full_clean()

    def is_valid(self) -> bool:
        return not self.searching and super().is_valid()

    def choices_response(self, query: Any) -> JsonResponse:
        """What the form's choices endpoint answers its script (static/js/forms.js) as a search
        is typed: ``SearchedChoices.answer`` for the searched list ``query["list"]`` names, the
        text ``q`` and the ids ``ticked`` (repeated); 404 when it names no searched list here."""
        field = self.fields.get(query.get("list", ""))
        if not isinstance(field, SearchedChoices):
            raise Http404
        return JsonResponse(field.answer(q=query.get("q", ""), ticked=query.getlist("ticked")))
