"""Texts written where no reader's language is known, shown later in the reader's language.

An ingest, a rendition or an export runs in a Celery task: whoever reads its per-file reasons
does so later, in their own language. Such a text is a ``Deferred``: a ``str`` holding its
English (what logs, ``manage.py`` and machine-facing JSON keep), that also carries its message id
and arguments. ``explained(text)`` gives the two columns of ``apps.core.models.Explained`` (the
English ``reason`` and its ``reason_parts``), and ``Explained.reason_shown`` translates them into
the active language when a page is drawn. Message ids are marked with ``gettext_noop`` at the
call site so that makemessages finds them; arguments are inserted untranslated (numbers, names of
codecs or exception types).

    raise DicomError(Deferred(gettext_noop("missing %(keyword)s"), keyword="SOPInstanceUID"))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext, ngettext

#: a message id, or a plural one: (singular, plural, the name of the argument whose number
#: chooses between them), made by ``Deferred.ngettext``
MessageId = str | tuple[str, str, str]
Part = tuple[MessageId, dict[str, Any]]


class Deferred(str):
    """English text that keeps the message ids and arguments it was made from."""

    parts: tuple[Part, ...]

    def __new__(cls, msgid: str, /, **args: Any) -> Deferred:
        return cls._of(((msgid, args),))

    @classmethod
    def ngettext(cls, singular: str, plural: str, count: str, /, **args: Any) -> Deferred:
        """A text with a number in it ("approved for 1 hour" / "for 3 hours"): its form is
        chosen by the number in the argument named ``count``, in the reader's language when it is
        shown (``ngettext``). Called by this name, makemessages finds both forms (xgettext's
        ``ngettext:1,2``): no ``gettext_noop`` at the call site."""
        return cls._of((((singular, plural, count), args),))

    @classmethod
    def _of(cls, parts: Iterable[Part]) -> Deferred:
        parts = tuple(parts)
        self = super().__new__(cls, _sentences(_render(_english(m, a), a) for m, a in parts))
        self.parts = parts
        return self

    @classmethod
    def join(cls, texts: Iterable[str]) -> str:
        """Several texts as one, each a sentence of its own (``_sentences``). Stays translatable
        when every text is a ``Deferred``; a plain ``str`` among them (a library's message) gives a
        plain ``str``."""
        texts = list(texts)
        if all(isinstance(t, Deferred) for t in texts):
            return cls._of(p for t in texts for p in t.parts)
        return _sentences(texts)

    def translated(self) -> str:
        return _sentences(_render(_translated(m, a), a) for m, a in self.parts)


def _sentences(texts: Iterable[str]) -> str:
    """Texts one after the other, space-separated, a text that does not end a sentence (a short
    report phrase such as "same SOPInstanceUID and same bytes as a stored instance") closed with a
    full stop when another follows it, so that two never read as one sentence."""
    texts = [t for t in texts if t]
    return " ".join(t if i == len(texts) - 1 or t.rstrip()[-1:] in ".!?:;" else f"{t}."
                    for i, t in enumerate(texts))


def _english(msgid: MessageId, args: dict[str, Any]) -> str:
    if isinstance(msgid, str):
        return msgid
    singular, plural, count = msgid
    return singular if args[count] == 1 else plural


def _translated(msgid: MessageId, args: dict[str, Any]) -> str:
    if isinstance(msgid, str):
        return gettext(msgid)
    singular, plural, count = msgid
    return ngettext(singular, plural, args[count])


def _msgid(stored: Any) -> MessageId:
    """A stored message id back: a text, or a plural one's three texts (a JSON list)."""
    if isinstance(stored, str):
        return stored
    if isinstance(stored, list | tuple) and len(stored) == 3 and all(isinstance(s, str) for s in stored):
        return (stored[0], stored[1], stored[2])
    raise ValueError("not a message id")


def _render(template: str, args: dict[str, Any]) -> str:
    return template % args  # a mapping: a message without placeholders comes out as it is


def restore(english: str, parts: list | None) -> str:
    """A stored text back as it was made: a ``Deferred`` if its parts were kept, else the English."""
    if not parts:
        return english
    try:
        return Deferred._of((_msgid(m), dict(a)) for m, a in parts)
    except (TypeError, ValueError, KeyError):  # a row written by hand or by an older release
        return english


def translate(text: str) -> str:
    """The text in the active language: a ``Deferred`` translated, any other text as it is."""
    if isinstance(text, Deferred):
        try:
            return text.translated()
        except (TypeError, ValueError, KeyError):  # a translation with broken placeholders
            return str(text)
    return text


def explained(text: str, max_length: int = 300, field: str = "reason") -> dict[str, Any]:
    """The two columns of a text (``apps.core.models.Explained``'s ``reason`` and
    ``reason_parts``, or another ``field`` and its ``<field>_parts``): its English, cut to the
    column, and its parts (``[]`` for a plain text, which is then shown as it is)."""
    parts = [[m, a] for m, a in text.parts] if isinstance(text, Deferred) else []
    return {field: str(text)[:max_length], f"{field}_parts": parts}
