"""Idle sign-out seen from an open page (static/js/activity.js), the page's clock driven by
Playwright: typing keeps the session, a notice warns before the limit, and when the session has
ended the page says so while what was typed stays on it."""

from __future__ import annotations

import time
from importlib import import_module

import pytest
from django.conf import settings
from playwright.sync_api import expect

from apps.accounts.middleware import LAST_SEEN
from apps.organizations.models import Role
from tests.browser.conftest import sign_in
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _session_idle(page, seconds: float) -> None:
    """Move the server's record of the session's last activity ``seconds`` back."""
    key = next(c["value"] for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    session[LAST_SEEN] = time.time() - seconds
    session.save()


def _sign_in_on_a_fake_clock(page, base: str, idle_minutes: int) -> None:
    """A clinician of an organization with this idle limit signs in; the page's timers and
    ``Date`` run on Playwright's clock from here on (the server's time is real)."""
    user = member(OrganizationFactory(staff_idle_minutes=idle_minutes), Role.CLINICIAN)
    page.clock.install()
    sign_in(page, base, user.email)


def test_typing_keeps_the_session_a_notice_warns_and_an_ended_session_keeps_the_text(page, live_server):
    _sign_in_on_a_fake_clock(page, live_server.url, 4)  # 240 s; the warning comes 60 s before
    page.goto(f"{live_server.url}/cases/")
    search = page.locator("input[name=q]")
    warning = page.get_by_text("You will be signed out soon")
    ended = page.get_by_text("You have been signed out after a while without activity")

    # typing: within the next minute the page tells the server, which answers 204
    search.press_sequentially("long note")
    with page.expect_response(lambda r: r.url.endswith("/accounts/activity/")) as ping:
        page.clock.run_for(65_000)
    assert ping.value.status == 204
    expect(warning).to_be_hidden()

    # no input: nothing is sent; the notice comes before the limit, and staying sends one ping
    requests = []
    page.on("request", lambda r: requests.append(r.url) if r.url.endswith("/accounts/activity/") else None)
    page.clock.run_for(185_000)
    expect(warning).to_be_visible()
    assert requests == []
    with page.expect_response(lambda r: r.url.endswith("/accounts/activity/")) as ping:
        page.get_by_role("button", name="Stay signed in").click()
    assert ping.value.status == 204
    expect(page.locator("#idle-notice")).to_be_hidden()

    # the server's session has ended meanwhile (say, the laptop slept): the next ping learns it,
    # and the page says so; the text is still there to copy
    _session_idle(page, 5 * 60)
    search.press("End")
    search.press_sequentially(" continued")
    page.clock.run_for(65_000)
    expect(ended).to_be_visible()
    expect(warning).to_be_hidden()
    assert search.input_value() == "long note continued"


def test_a_page_left_alone_says_it_was_signed_out(page, live_server):
    _sign_in_on_a_fake_clock(page, live_server.url, 2)
    ended = page.get_by_text("You have been signed out after a while without activity")
    # requests the page makes by itself (an upload's chunks, the viewer's frames) keep the
    # server's session, so they keep the page's clock too: no notice during a long upload
    for _ in range(4):
        page.clock.run_for(50_000)
        page.evaluate("fetch('/cases/', {credentials: 'same-origin'}).then(r => r.text())")
        page.wait_for_timeout(300)  # real time, for the observer to hear of it
    expect(page.locator("#idle-notice")).to_be_hidden()
    page.clock.run_for(125_000)
    expect(ended).to_be_visible()
