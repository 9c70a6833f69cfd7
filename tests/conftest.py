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
