"""No idle limit is under a minute, so a session used within the last minute is not asked for
its limit (``AccessGateMiddleware``: a query of the organizations that sent the person shares,
on every request): a page still reads it, to tell the browser; an API call or a redirect does
not (tests/test_page_queries.py counts it). Past a minute the limit is read and applied as
before, on API calls as on pages."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.middleware import LAST_SEEN
from apps.organizations.models import Role
from tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict():
    return OrganizationFactory(slug="strict-idle", staff_idle_minutes=1, external_idle_minutes=1)


def _idle_for(client, seconds: float, url: str):
    client.get(url)
    session = client.session
    session[LAST_SEEN] = time.time() - seconds
    session.save()
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return response, [q["sql"] for q in ctx.captured_queries]


def _limit_read(queries: list[str]) -> bool:
    """The gate's own read: the limits of the organizations that sent the person shares (with the
    live grants addressed to them, ``policy._live_grants_held``), not the memberships' read."""
    return any(sql.startswith("SELECT") and not sql.startswith('SELECT "organizations_membership"')
               and '"organizations_organization"."external_idle_minutes"' in sql and '"sharing_grant"' in sql
               for sql in queries)


def test_an_api_call_within_a_minute_reads_no_limit_and_goes_through(strict, client_as):
    client = client_as(member(strict, Role.CLINICIAN))
    response, queries = _idle_for(client, 50, "/api/v1/grants/")
    assert response.status_code == 200 and "_auth_user_id" in client.session
    assert not _limit_read(queries)


def test_an_api_call_past_a_one_minute_limit_is_signed_out(strict, client_as):
    client = client_as(member(strict, Role.EXTERNAL_CONSULTANT))
    response, queries = _idle_for(client, 70, "/api/v1/grants/received/")
    assert response.status_code == 403 and response.json()["detail"] == "signed_out_idle"
    assert "_auth_user_id" not in client.session
    assert _limit_read(queries)


def test_a_page_within_a_minute_still_tells_the_browser_its_limit(strict, client_as):
    client = client_as(member(strict, Role.CLINICIAN))
    response, queries = _idle_for(client, 10, reverse("cases:case_list"))
    assert response.status_code == 200
    assert 'data-idle-seconds="60"' in response.content.decode()
    assert _limit_read(queries)
