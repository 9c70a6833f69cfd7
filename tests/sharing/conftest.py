from __future__ import annotations

import pytest

from apps.organizations.models import Role
from tests.factories import CaseFactory, member


@pytest.fixture
def owner(org_a):
    """The clinician who owns the case (created it)."""
    return member(org_a, Role.CLINICIAN, email="owner@alpha.example")


@pytest.fixture
def case(org_a, owner):
    return CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)


@pytest.fixture
def consultant(org_a):
    return member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")


@pytest.fixture
def radiologist(org_a):
    return member(org_a, Role.RADIOLOGIST, email="radiologist@alpha.example")


@pytest.fixture
def anonymous_on(case):
    """The case's organization with anonymous links switched on."""
    case.organization.anonymous_links_enabled = True
    case.organization.save(update_fields=["anonymous_links_enabled"])
    return case.organization
