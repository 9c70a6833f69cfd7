"""Log records without what must not be logged.

- Paths: a query string can name a patient (the case search takes a name or an MRN), and a share
  link, an invitation or a password reset carries its secret in the path. Access lines and
  Django's request warnings pass the path as an argument.
- Database values: PostgreSQL's error detail quotes the values of the row at fault (``DETAIL:
  Key (mrn)=(...) already exists``, ``Failing row contains (...)``), and a failed request or task
  logs that error's message, in its traceback or as an argument.
- E-mail addresses: a mail server's refusal names the recipient (smtplib's
  ``SMTPRecipientsRefused``), and the recipient of a patient invitation is a patient.
- What pydicom quotes from a file: "Unknown encoding '<Specific Character Set>'", a decoder's
  error text. A damaged file's values hold anything (the ingest's fuzzer found a neighbouring UID
  swallowed by a wrong length; a name could be), so in records of pydicom's loggers (``pydicom``
  and its children) every quoted part is replaced.

The filter rewrites a record's arguments and formats its traceback before any handler does. A
request refused on purpose (a 4xx: a denial, a missing object) keeps its one warning line without
Django's traceback: the denial is in the audit trail, and a traceback per refusal buries the
server errors that need one."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

REDACTED = "[redacted]"
# path segments that are bearer secrets: share links, invitations, allauth's reset and confirm keys,
# the e-mailed link on to an organization's single sign-on (apps.accounts.sso)
_SECRET_SEGMENT = re.compile(
    r"^(/s/|/invite/|/accounts/password/reset/key/|/accounts/confirm-email/|/accounts/sso/continue/)[^/?]+")
# the rest of the line after PostgreSQL's DETAIL: (values of the row or key at fault)
_DB_DETAIL = re.compile(r"(DETAIL:\s*).*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_QUOTED = re.compile(r"'.*'", re.DOTALL)


def redact_text(text: str) -> str:
    """``text`` without the values a database error's detail quotes, nor e-mail addresses."""
    if "DETAIL:" in text:
        text = _DB_DETAIL.sub(rf"\g<1>{REDACTED}", text)
    return _EMAIL.sub(REDACTED, text) if "@" in text else text


def redact_path(path: str) -> str:
    """``path`` with its query string and any secret segment replaced by a marker."""
    path, question, _query = path.partition("?")
    path = _SECRET_SEGMENT.sub(rf"\g<1>{REDACTED}", path)
    return path + (f"?{REDACTED}" if question else "")


def _redact_arg(arg: object) -> object:
    if isinstance(arg, str):
        return redact_path(arg) if arg.startswith("/") else redact_text(arg)
    if isinstance(arg, BaseException):
        text = repr(arg)
        return redacted if (redacted := redact_text(text)) != text else arg
    return arg


class Redact(logging.Filter):
    """Rewrites a record's arguments (paths; database values and e-mail addresses, also inside an
    exception passed as an argument) and formats its traceback without them; drops the traceback
    of a refused request (4xx)."""

    _format = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if 400 <= getattr(record, "status_code", 0) < 500:  # django.request's refusals
            record.exc_info = record.exc_text = None
        if record.name == "pydicom" or record.name.startswith("pydicom."):
            message = record.getMessage()
            record.msg, record.args = _QUOTED.sub(f"'{REDACTED}'", message), ()
            if record.exc_info:  # a decoder's error, logged with its text: its type only
                record.exc_text = f"{record.exc_info[0].__name__} ({REDACTED})" if record.exc_info[0] else None
                record.exc_info = None
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, Mapping):  # one dict for "%(name)s" formats (Celery's task failures)
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(self._format.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


class ScrubbedError(Exception):
    """Raised by a task in place of an unexpected error: its message is the error's type name
    only. A message can quote patient data (an OSError names the file or folder it failed on,
    and uploads and import folders are often named after the patient; a library error can quote
    a DICOM value), and whatever a task raises is logged with its message and traceback (by
    Celery in a worker; run eagerly, by Django for the request that queued it)."""


def scrubbed(error: BaseException) -> ScrubbedError:
    """``error`` as a ScrubbedError keeping its traceback's frames (where it failed) but not its
    message; raise it ``from None`` so that the original is not printed as its context."""
    return ScrubbedError(type(error).__name__).with_traceback(error.__traceback__)


def install() -> None:
    """Put the filter on the server's access logger, which has handlers of its own (uvicorn's,
    or gunicorn's access log under its uvicorn worker) that the settings' LOGGING does not reach.
    Django's loggers reach the console handler, which has the filter from LOGGING."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, Redact) for f in access.filters):
        access.addFilter(Redact())
