"""The case list's counts take their plural forms: the Spanish page read "1 abiertos, 0
cerrados, 1 en total" (one sentence translated whatever the numbers). Each count is now its own
message with a singular and a plural (``blocktranslate count``)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.cases.models import CaseStatus
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


def _counts(client) -> str:
    html = client.get(reverse("cases:case_list")).content.decode()
    return " ".join(re.search(r'data-testid="case-counts">(.*?)</p>', html, re.S).group(1).split())


def test_each_count_is_singular_or_plural_by_its_number(org_a, clinician_a, client_as):
    client = client_as(clinician_a)
    assert _counts(client) == "0 open cases, 0 closed cases, 0 cases in all."
    CaseFactory(organization=org_a)
    assert _counts(client) == "1 open case, 0 closed cases, 1 case in all."
    CaseFactory(organization=org_a, status=CaseStatus.CLOSED)
    CaseFactory(organization=org_a)
    assert _counts(client) == "2 open cases, 1 closed case, 3 cases in all."
