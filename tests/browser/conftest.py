"""Playwright driving Debian's Chromium (/usr/bin/chromium), headless, offline.

Never `playwright install`: the browser is the Debian package. Requests to any host other than
the test server are aborted.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from urllib.parse import urlsplit

import pytest

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
# synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def signed_in_as(page, base: str, user) -> None:
    """The page's browser context carries a session of ``user`` (no form, no second factor)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    page.context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])


def sign_in(page, base: str, email: str, *, then: str = "/", password: str | None = None) -> None:
    """Sign in through the sign-in form with ``next=then``; returns on the page ``then``. The
    password is the factories' (TEST_PASSWORD) unless given; no second factor is asked."""
    from tests.factories import TEST_PASSWORD

    page.goto(f"{base}/accounts/login/?next={then}")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password or TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{then}")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Browser tests need Debian's chromium at /usr/bin/chromium (make chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _only_local(route):
    if urlsplit(route.request.url).hostname in LOCAL_HOSTS or route.request.url.startswith(("data:", "blob:")):
        route.continue_()
    else:
        route.abort()


def device_context(browser, width: int, height: int, *, language: str = "en", **options):
    """A browser context for a touch device of ``width`` x ``height`` (a tablet, a phone) in
    ``language`` ("en" or "es"), reaching only this machine, with the suite's timeout."""
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=True, is_mobile=True,
                                  locale="es-ES" if language == "es" else "en-US", **options)
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    return context


#: a phone in Spanish and a tablet in English: the devices the touch-target tests walk
PHONE_ES_TABLET_EN = [((390, 844), "es"), ((768, 1024), "en")]


@contextlib.contextmanager
def device_page(browser, viewport: tuple[int, int], language: str = "en", **options):
    """A page on a touch device of ``viewport`` (``device_context``), its context closed after."""
    context = device_context(browser, *viewport, language=language, **options)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _live_requests_finished():
    """After each browser test (its pages closed first: fixtures end in reverse order), wait for
    the live server's request threads still answering a closed page (a viewer's heartbeat, say)
    before the database is emptied: on SQLite such a thread holds a table lock that fails the
    flush ("database table is locked")."""
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
            "process_request_thread" in t.name for t in threading.enumerate() if t.is_alive()):
        time.sleep(0.05)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
