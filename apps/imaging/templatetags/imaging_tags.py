from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def person_name(value: str) -> str:
    """A DICOM person name (PN: ``Family^Given^Middle^Prefix^Suffix``, its alphabetic form before
    any ``=``) as people read one in a record: ``Family, Prefix Given Middle Suffix``. A name
    without components, or several names (``\\``), is shown as stored."""
    if not value or "\\" in value:
        return value
    alphabetic = value.split("=", 1)[0]
    if "^" not in alphabetic:
        return alphabetic or value
    family, given, middle, prefix, suffix = ([p.strip() for p in alphabetic.split("^")] + [""] * 5)[:5]
    rest = " ".join(p for p in (prefix, given, middle, suffix) if p)
    return ", ".join(p for p in (family, rest) if p) or value
