"""The extension page reads the organization's sharing rules once and passes them to each question
it asks (whether a later expiry is possible, why not, the template's maximum, the latest possible
expiry): it read them up to three times a request. What the page says is unchanged
(tests/sharing/test_extend_at_maximum.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.sharing import services
from apps.sharing.models import SharingPolicy
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import SharingPolicyFactory

pytestmark = pytest.mark.django_db


def _policy_reads(client, url: str) -> tuple[int, str]:
    client.get(url)  # warm the session
    table = SharingPolicy._meta.db_table
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return sum(table in q["sql"] for q in ctx.captured_queries), response.content.decode()


@pytest.mark.parametrize("saved", [True, False], ids=["rules saved", "default rules"])
@pytest.mark.parametrize("use_case", [UseCase.SECOND_OPINION, UseCase.TUMOR_BOARD], ids=["form", "at maximum"])
def test_the_extension_page_reads_the_rules_once(client_as, org_a, case, owner, consultant, use_case, saved):
    if saved:
        SharingPolicyFactory(organization=org_a, template_settings={"second_opinion": {"max_hours": 60},
                                                                    "tumor_board": {"max_hours": 150}})
    hours = 24 if use_case == UseCase.SECOND_OPINION else None  # a board share: its maximum
    grant, _link, _raw = services.share_create(case=case, by=owner, use_case=use_case, hours=hours,
                                               recipient_kind=RecipientKind.USER, grantee=consultant)
    reads, page = _policy_reads(client_as(owner), reverse("sharing:grant_extend",
                                                          kwargs={"grant_id": grant.public_id}))
    assert reads == 1
    if use_case == UseCase.TUMOR_BOARD:
        assert 'data-reason="at_maximum"' in page and ("150 hours" if saved else "168 hours") in page
    else:
        assert 'name="expires_at"' in page and "Latest possible" in page
        assert services.grant_extend_ceiling(grant=grant) == grant.starts_at + timedelta(hours=60 if saved else 72)
