"""No patient's name (a case search's query string), no bearer secret (a share link's or an
invitation's token) and no database values (an error's DETAIL) in the portal's log lines."""

from __future__ import annotations

import logging
import sys
import urllib.error
import urllib.request

import pytest
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.urls import reverse
from django.utils.log import log_response

from apps.core.logs import Redact, redact_path
from apps.organizations.models import Role
from tests.factories import OrganizationFactory, PatientFactory, member
from tests.servers import clean_env, uvicorn_server


def _console_handler() -> logging.Handler:
    """The handler the settings' LOGGING puts on the root logger (the one production writes to)."""
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, Redact) for f in h.filters)]
    assert len(handlers) == 1, logging.getLogger().handlers
    return handlers[0]


def _formatted(handler: logging.Handler, msg: str, *args, exc_info=None) -> str:
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, msg, args, exc_info)
    assert handler.filter(record)
    return handler.format(record)


@pytest.mark.parametrize(("path", "logged"), [
    ("/cases/?q=Doe%5EJane&status=", "/cases/?[redacted]"),
    ("/s/Zx9-secret-token/", "/s/[redacted]/"),
    ("/s/Zx9-secret-token/?download=1", "/s/[redacted]/?[redacted]"),
    ("/invite/abc.def-ghi/", "/invite/[redacted]/"),
    ("/accounts/password/reset/key/1-set-password/", "/accounts/password/reset/key/[redacted]/"),
    ("/accounts/confirm-email/MTQ:1tA:xyz/", "/accounts/confirm-email/[redacted]/"),
    ("/cases/7d0c5a55-2b1e-4c57-9a53-5f6d3c0c9b1f/", "/cases/7d0c5a55-2b1e-4c57-9a53-5f6d3c0c9b1f/"),
    ("/sharing/received/", "/sharing/received/"),
    ("/static/css/lightbox.css", "/static/css/lightbox.css"),
])
def test_paths_are_logged_without_queries_or_secrets(path, logged):
    assert redact_path(path) == logged


@pytest.mark.slow
def test_a_real_server_logs_neither_a_search_nor_a_link_token(tmp_path):
    """The server as ``make serve`` runs it, access lines on. Its database is unreachable, so the
    link's request fails with a 500 and Django logs its path too (the request logger)."""
    env = clean_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/lightbox",
                    LIGHTBOX_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portal.settings.local")
    log = tmp_path / "server.log"
    with uvicorn_server(env, log=log) as base:
        urllib.request.urlopen(f"{base}/healthz?q=Doe%5EJane", timeout=10).close()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/s/Zx9SecretToken42/?q=Roe%5EJohn", timeout=10)
    output = log.read_text(errors="replace")
    assert "Doe" not in output and "Roe" not in output and "Zx9SecretToken42" not in output, output
    # still logged, with the marker: the access line and Django's line for the failed request
    assert '"GET /healthz?[redacted] HTTP/1.1" 200' in output, output
    assert '"GET /s/[redacted]/?[redacted] HTTP/1.1"' in output, output
    assert "django.request Internal Server Error: /s/[redacted]/" in output, output


@pytest.mark.django_db(transaction=True)
def test_a_database_error_logged_loses_the_values_it_quotes():
    """PostgreSQL's DETAIL quotes the row at fault: here a second patient with the same MRN. A
    failed request logs it in its traceback, a failed task as an argument (Celery's
    "raised unexpected: %r")."""
    mrn = "MRN-" + "4711-SECRET"  # built, so that the traceback's source lines do not show it
    first = PatientFactory(mrn=mrn)
    try:
        with transaction.atomic():
            PatientFactory(organization=first.organization, mrn=mrn)
    except IntegrityError as exc:
        error, exc_info = exc, sys.exc_info()
    if "DETAIL:" not in str(error):  # SQLite names the columns only; make the PostgreSQL message
        error = IntegrityError('duplicate key value violates unique constraint "one_mrn_per_org"\n'
                               f"DETAIL:  Key (organization_id, mrn)=(1, {mrn}) already exists.")
        try:
            raise error
        except IntegrityError:
            exc_info = sys.exc_info()
    handler = _console_handler()
    logged = _formatted(handler, "Internal Server Error: %s", "/cases/new/", exc_info=exc_info)
    assert "MRN-4711-SECRET" not in logged and "DETAIL:  [redacted]" in logged, logged
    assert "IntegrityError" in logged and "one_mrn_per_org" in logged  # still says what failed
    logged = _formatted(handler, "Task %s raised unexpected: %r", "apps.cases.tasks.x", error)
    assert "MRN-4711-SECRET" not in logged and "[redacted]" in logged, logged
    # as Celery logs a failed task: one dict of arguments, the error as its repr
    logged = _formatted(handler, "Task %(name)s[%(id)s] raised unexpected: %(exc)s",
                        {"name": "apps.cases.tasks.x", "id": "1", "exc": repr(error)})
    assert "MRN-4711-SECRET" not in logged and "apps.cases.tasks.x[1] raised unexpected" in logged, logged


def test_an_email_address_logged_is_redacted():
    """A mail server's refusal names the recipient (a patient, for a patient invitation), in a
    traceback's last line or in an error passed as an argument."""
    import smtplib

    address = "jane.roe+1@home.example"
    error = smtplib.SMTPRecipientsRefused({address: (550, f"5.1.1 <{address}>: user unknown".encode())})
    try:
        raise error
    except smtplib.SMTPException:
        exc_info = sys.exc_info()
    handler = _console_handler()
    logged = _formatted(handler, "Internal Server Error: %s", "/cases/x/invite-patient/", exc_info=exc_info)
    assert "jane.roe" not in logged and "SMTPRecipientsRefused: {'[redacted]'" in logged, logged
    for logged in (_formatted(handler, "Task %s raised unexpected: %r", "x", error),
                   _formatted(handler, "Task %(name)s raised unexpected: %(exc)s", {"name": "x", "exc": repr(error)}),
                   _formatted(handler, "sent to %s", address)):
        assert "jane.roe" not in logged and "[redacted]" in logged, logged


@pytest.mark.django_db
def test_a_refused_request_is_one_line_and_a_server_error_keeps_its_traceback(client, monkeypatch):
    """Django logs a 403 or 404 with the exception's traceback; the console shows the warning
    line only (the audit trail has the denial). A 500 still shows where it failed."""
    handler = _console_handler()
    lines: list[str] = []
    monkeypatch.setattr(handler, "emit", lambda record: lines.append(handler.format(record)))
    client.force_login(member(OrganizationFactory(mfa_required_roles=[]), Role.CLINICIAN))
    assert client.get(reverse("organizations:members")).status_code == 403  # admins only
    refusal = "\n".join(lines)
    assert "django.request" in refusal and "Traceback" not in refusal, refusal
    lines.clear()
    log_response("Internal Server Error: %s", "/cases/", response=HttpResponse(status=500),
                           exception=_raised(RuntimeError("boom")))
    assert "Traceback" in "\n".join(lines) and "RuntimeError: boom" in "\n".join(lines)


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as exc:
        return exc


def test_a_celery_worker_keeps_the_redacting_handler():
    """A worker sets up logging through this call; without portal/celery.py's receiver Celery
    replaces the root logger's handlers with its own, which redact nothing."""
    from portal.celery import app

    handler = _console_handler()
    app.log.setup_logging_subsystem(loglevel="INFO")
    assert _console_handler() is handler


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_no_logger_writes_or_mails_past_the_redacting_filter(client, settings, debug):
    """Django's own logging puts handlers on the `django` logger (a console one for DEBUG, an
    e-mail to ADMINS otherwise, with the request in it) and on `django.server` (runserver's
    access log, query strings included). They see a record before the root's redacting handler
    does, so they would write or mail a search's patient name or a link's token. The settings
    leave every record to the root's handler, whether or not DEBUG is on or ADMINS set."""
    from django.utils.log import AdminEmailHandler

    settings.DEBUG = debug
    settings.ADMINS = [("Ops", "ops@hospital.example")]
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in logging.Logger.manager.loggerDict]
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler).__module__.startswith("_pytest"):
                continue  # pytest's capture
            assert not isinstance(handler, AdminEmailHandler), logger.name
            assert any(isinstance(f, Redact) for f in handler.filters) or not _writes_django_records(logger), (
                logger.name, handler)
    lines: list[str] = []
    for name in ("django.request", "django.server", "django.security.csrf"):
        record = logging.LogRecord(name, logging.ERROR, __file__, 1, "Failure: %s", ("/s/Zx9-secret-token/?q=Doe",),
                                   None)
        logger = logging.getLogger(name)
        while logger is not None:
            for handler in logger.handlers:
                if type(handler).__module__.startswith("_pytest"):
                    continue
                if handler.filter(record) and record.levelno >= handler.level:
                    lines.append(handler.format(record))
            logger = logger.parent if logger.propagate else None
    assert lines and not any("Zx9" in line or "Doe" in line for line in lines), lines


def _writes_django_records(logger: logging.Logger) -> bool:
    return logger.name == "django" or logger.name.startswith("django.")
