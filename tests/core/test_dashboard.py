"""The dashboard: what it tells each role to do next."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_an_external_consultant_is_shown_where_the_cases_shared_with_them_are(org_a, client_as):
    """A consultant's dashboard named the organization and their role, and nothing else: the one
    thing they came for, the cases shared with them, was under a menu entry it did not point to."""
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    html = client_as(consultant).get("/").content.decode()
    assert 'data-testid="consultant-next"' in html
    assert f'<a href="{reverse("sharing:shared_with_me")}">See the cases shared with you</a>' in html
    # staff have the whole menu for that: the line is the consultant's
    clinician = member(org_a, Role.CLINICIAN)
    assert 'data-testid="consultant-next"' not in client_as(clinician).get("/").content.decode()
