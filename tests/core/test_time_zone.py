"""Times in the reader's own time zone (apps.core.middleware.TimeZoneMiddleware): a tumor board
scheduled from New York for 09:00 is 14:00 UTC, and reads 15:00 to a member in Madrid; every page
names the zone its times are in; a cookie naming no real zone changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from apps.core.middleware import TIME_ZONE_COOKIE
from apps.organizations.models import Role
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db


def _in_zone(client, zone: str):
    client.cookies[TIME_ZONE_COOKIE] = zone
    return client


def test_a_time_typed_in_one_zone_is_stored_as_that_instant_and_read_in_anothers(org_a, client_as):
    host = member(org_a, Role.RADIOLOGIST)
    colleague = member(org_a, Role.RADIOLOGIST)
    case = CaseFactory(organization=org_a)
    new_york = _in_zone(client_as(host), "America%2FNew_York")  # as a script may encode it
    form = new_york.get(reverse("cases:board_create")).content.decode()
    assert "(America/New_York time)" in form  # the field says which zone it reads
    response = new_york.post(reverse("cases:board_create"), {
        "title": "Thoracic board", "meeting_at": "2030-01-15T09:00", "review_days": "5", "host": host.pk,
        "cases": [case.pk]})
    assert response.status_code == 302, response.content.decode()[:2000]
    board = case.board_sessions.get()
    assert board.meeting_at == datetime(2030, 1, 15, 14, 0, tzinfo=UTC)

    detail = reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})
    madrid = _in_zone(client_as(colleague), "Europe/Madrid").get(detail).content.decode()
    assert 'datetime="2030-01-15T15:00:00+01:00"' in madrid
    assert "Times are in the Europe/Madrid time zone." in madrid
    assert 'datetime="2030-01-15T09:00:00-05:00"' in new_york.get(detail).content.decode()


@pytest.mark.parametrize("cookie", ["Mars/Olympus_Mons", "../../../etc/passwd", "x" * 5000, "", "Europe/Madrid\x00"])
def test_a_cookie_naming_no_zone_leaves_the_servers(cookie, settings, clinician_a, client_as):
    page = _in_zone(client_as(clinician_a), cookie).get(reverse("cases:case_list"))
    assert page.status_code == 200
    assert f"Times are in the {settings.TIME_ZONE} time zone." in page.content.decode()


def test_without_the_cookie_the_servers_zone_is_named(settings, client):
    settings.TIME_ZONE = "Europe/Lisbon"
    page = client.get(reverse("account_login")).content.decode()
    assert "Times are in the Europe/Lisbon time zone." in page
