from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttles and lockout counters in the cache belong to one test: a lockout test must not
    lock out the next test's users (the cache is per process and outlives database rollbacks)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
