"""static/js/timezone.js: a browser in Tokyo has its pages' times in Tokyo's zone from the page
after the first one it opens."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import _only_local, sign_in
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_browsers_zone_is_used_from_the_next_page(browser, live_server, settings):
    user = member(OrganizationFactory())
    context = browser.new_context(timezone_id="Asia/Tokyo", locale="en-US")
    context.route("**/*", _only_local)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/accounts/login/")
        # the first page, drawn before the browser said where it is, names the zone it used
        expect(page.get_by_test_id("time-zone")).to_have_text(f"Times are in the {settings.TIME_ZONE} time zone.")
        sign_in(page, live_server.url, user.email, then="/cases/")
        expect(page.get_by_test_id("time-zone")).to_have_text("Times are in the Asia/Tokyo time zone.")
        assert {"name": "lightbox_tz", "value": "Asia/Tokyo"}.items() <= next(
            c for c in context.cookies() if c["name"] == "lightbox_tz").items()
    finally:
        context.close()
