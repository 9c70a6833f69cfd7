"""Template filters of the audit trail: its page (templates/audit/event_list.html) and a case's
Recent access (templates/cases/case_detail.html), which show ids the same way."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

#: where an id or a code may break: after its separators ("b6ea2368-", "imaging.", "study_", "2001:"),
#: and after the comma between the ids of several share links one visitor opened ("link:<id>,<id>")
_AFTER_SEPARATOR = re.compile(r"(?<=[-._:/@,])")
#: a run without a separator longer than this (a hash) breaks every CHUNK characters instead
LONG_RUN, CHUNK = 16, 8


@register.filter
def id_breaks(value: Any) -> SafeString:
    """An id or an action code, escaped, with a line break allowed (``<wbr>``) only after each of
    its separators, and every 8 characters of a run of more than 16 without one. Shown whole in a
    narrow column it breaks where it reads ("b6ea2368-" / "a9c4-4f1e-"), never inside a group;
    copied or read aloud it is unchanged (``<wbr>`` is no character)."""
    text = "" if value is None else str(value)
    pieces: list[str] = []
    for piece in _AFTER_SEPARATOR.split(text):
        if len(piece) > LONG_RUN:
            pieces.extend(piece[i:i + CHUNK] for i in range(0, len(piece), CHUNK))
        elif piece:
            pieces.append(piece)
    if not pieces:
        return SafeString("")
    return format_html("{}{}", format_html_join("", "{}<wbr>", ((p,) for p in pieces[:-1])), pieces[-1])
