from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from django.test import Client

from apps.organizations.models import Role
from tests.factories import OrganizationFactory, member


@pytest.fixture
def org_a(db):
    return OrganizationFactory(name="Alpha Hospital", slug="alpha")


@pytest.fixture
def org_b(db):
    return OrganizationFactory(name="Beta Clinic", slug="beta")


@pytest.fixture
def admin_a(org_a):
    return member(org_a, Role.ORG_ADMIN, email="admin@alpha.example")


@pytest.fixture
def admin_b(org_b):
    return member(org_b, Role.ORG_ADMIN, email="admin@beta.example")


@pytest.fixture
def clinician_a(org_a):
    return member(org_a, Role.CLINICIAN, email="clinician@alpha.example")


@pytest.fixture
def client_as():
    """client_as(user) -> a test Client signed in as that user."""

    def make(user) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """The test run's output folder (screenshots and other artefacts)."""
    path = Path(os.environ.get("LIGHTBOX_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- e-mail is a notification layer: no mail sent by any test may carry patient data ---------

def _patient_strings() -> set[str]:
    """Names, record numbers and birth dates of every patient in the test database (a name that
    is also a user's name is skipped: mails may name the inviter)."""
    from apps.accounts.models import User
    from apps.cases.models import Patient

    user_names = set(User.objects.values_list("full_name", flat=True))
    found: set[str] = set()
    for name, mrn, birth in Patient.objects.values_list("name", "mrn", "birth_date"):
        if name and len(name) >= 4 and name not in user_names:
            found.add(name)
        if mrn and len(mrn) >= 4:
            found.add(mrn)
        if birth:
            found |= {birth.isoformat(), birth.strftime("%d/%m/%Y"), birth.strftime("%m/%d/%Y")}
    return found


def mail_patient_leaks(messages) -> list[tuple[str, str]]:
    """(subject, leaked string) for each message of ``messages`` holding patient data."""
    needles = _patient_strings()
    leaks = []
    for message in messages:
        parts = [message.subject, message.body] + [str(c) for c, _ in getattr(message, "alternatives", [])]
        text = "\n".join(parts)
        leaks += [(message.subject, n) for n in needles if n in text]
    return leaks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    if outcome.excinfo is not None:
        return
    uses_db = item.get_closest_marker("django_db") is not None or \
        {"db", "transactional_db", "live_server"} & set(getattr(item, "fixturenames", ()))
    from django.core import mail

    if uses_db and getattr(mail, "outbox", None):
        leaks = mail_patient_leaks(mail.outbox)
        if leaks:
            outcome.force_exception(AssertionError(f"e-mail carries patient data: {leaks}"))


# --- emptying the database after a transactional test, fast, on PostgreSQL ---------------------
# pytest-django empties every table after each transaction=True or live-server test (Django's
# flush). On PostgreSQL that is one TRUNCATE of all ~65 tables, then post_migrate writes back every
# content type and permission: 0.7-0.9 s a test, a quarter of the browser tests' time. The tables
# of a test are small, so DELETE empties them in a few milliseconds (the foreign keys Django makes
# are checked at commit: the order does not matter); the two audit tables refuse DELETE of a row
# whatever the session (apps/audit/migrations 0004 and 0007) and are still TRUNCATEd, as the test
# connections say it is maintenance (portal/settings/test.py); content types and permissions,
# which post_migrate would write back the same, are kept. tests/audit/test_verify.py checks a
# flush leaves every other table empty.

#: emptied with TRUNCATE: they refuse DELETE of their rows
FLUSH_TRUNCATED = ("audit_auditevent", "audit_auditchain")
#: not emptied: migrations fill them and post_migrate would write the same rows back
FLUSH_KEPT = ("django_content_type", "auth_permission")


def _install_fast_flush() -> None:
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncating_flush = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:  # what Django's own callers ask for otherwise
            return truncating_flush(self, style, tables, reset_sequences=reset_sequences,
                                    allow_cascade=allow_cascade)
        quote = self.quote_name
        truncated = [quote(t) for t in tables if t in FLUSH_TRUNCATED]
        sql = [f"TRUNCATE {', '.join(truncated)};"] if truncated else []
        return sql + [f"DELETE FROM {quote(t)};" for t in tables
                      if t not in FLUSH_TRUNCATED and t not in FLUSH_KEPT]

    DatabaseOperations.sql_flush = sql_flush


_install_fast_flush()


# --- a live-server test ends only when the server has finished every request it took ----------
# The server keeps working after a browser has its last byte: a download records its completed
# transfer in the audit trail when the stream closes. A test that ended then would flush the
# database under that insert (PostgreSQL: deadlock in teardown). Requests are counted from
# Django's request_started to request_finished (sent when the response is closed) on the live
# server's threads; the test client runs on the main thread and is not counted.

_live_requests: dict[threading.Thread, int] = {}
_live_requests_lock = threading.Lock()


def _count_live_request(delta: int) -> None:
    thread = threading.current_thread()
    if thread is not threading.main_thread():
        with _live_requests_lock:
            _live_requests[thread] = _live_requests.get(thread, 0) + delta


def _live_request_started(**kwargs) -> None:
    _count_live_request(+1)


def _live_request_finished(**kwargs) -> None:
    _count_live_request(-1)


def live_requests_in_flight() -> int:
    """Requests the live server's threads have started and not finished (threads still alive)."""
    with _live_requests_lock:
        return sum(n for thread, n in _live_requests.items() if n > 0 and thread.is_alive())


@pytest.fixture(autouse=True)
def _live_server_drained(request):
    """For a test on pytest-django's live server: set up after the test database (so torn down
    before it is flushed), and ended only once no request is still being served (at most 30 s)."""
    if "live_server" not in request.fixturenames:
        yield
        return
    from django.core.signals import request_finished, request_started

    request.getfixturevalue("transactional_db")
    request_started.connect(_live_request_started, dispatch_uid="tests-live-requests-started")
    request_finished.connect(_live_request_finished, dispatch_uid="tests-live-requests-finished")
    with _live_requests_lock:
        _live_requests.clear()
    yield
    deadline = time.monotonic() + 30
    while live_requests_in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: a request leaves its language active in the
    thread (LocaleMiddleware activates one per request and never deactivates it), so a test
    after a Spanish request would read Spanish messages from services it calls directly."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttles and lockout counters in the cache belong to one test: a lockout test must not
    lock out the next test's users (the cache is per process and outlives database rollbacks)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tmp_folder(tmp_path, monkeypatch) -> Path:
    """The system temporary folder, as ``tempfile`` finds it, is this test's own (tests/tempfolder.py
    reads what the process keeps there)."""
    import tempfile

    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
