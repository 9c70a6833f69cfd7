"""Paths in log lines without what must not be logged: a query string can name a patient (the case
search takes a name or an MRN), and a share link, an invitation or a password reset carries its
secret in the path. Access lines and Django's request warnings pass the path as an argument,
which this filter rewrites before any handler formats the record."""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# path segments that are bearer secrets: share links, invitations, allauth's reset and confirm keys
_SECRET_SEGMENT = re.compile(r"^(/s/|/invite/|/accounts/password/reset/key/|/accounts/confirm-email/)[^/?]+")


def redact_path(path: str) -> str:
    """``path`` with its query string and any secret segment replaced by a marker."""
    path, question, _query = path.partition("?")
    path = _SECRET_SEGMENT.sub(rf"\g<1>{REDACTED}", path)
    return path + (f"?{REDACTED}" if question else "")


class RedactPaths(logging.Filter):
    """Rewrites every string argument of a record that is a path (starts with ``/``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_path(a) if isinstance(a, str) and a.startswith("/") else a
                                for a in record.args)
        return True


def install() -> None:
    """Put the filter on the server's access logger, which has handlers of its own (uvicorn's,
    or gunicorn's access log under its uvicorn worker) that the settings' LOGGING does not reach.
    Django's loggers reach the console handler, which has the filter from LOGGING."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactPaths) for f in access.filters):
        access.addFilter(RedactPaths())
