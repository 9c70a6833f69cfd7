"""Signing out on a shared workstation: the browser forgets what the site kept in it (its
storage: the upload page's resumable uploads, with file names, cases and upload addresses; its
cache: the viewer's frames), by the sign-out response's Clear-Site-Data."""

from __future__ import annotations

import pytest

from apps.organizations.models import Role
from tests.browser.conftest import sign_in
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_signing_out_clears_what_the_browser_kept_for_the_site(page, live_server):
    user = member(OrganizationFactory(), Role.CLINICIAN)
    sign_in(page, live_server.url, user.email)
    page.goto(f"{live_server.url}/studies/upload/")
    page.evaluate("localStorage.setItem('tus::example::1', JSON.stringify({fileName: 'scan.dcm'}))")
    assert page.evaluate("localStorage.length") == 1
    with page.expect_response(lambda r: r.url.endswith("/accounts/logout/")) as signed_out:
        page.locator("form.signout button[type=submit]").click()
    assert signed_out.value.all_headers().get("clear-site-data") == '"cache", "storage"'
    page.wait_for_load_state("load")
    assert page.evaluate("localStorage.length") == 0
