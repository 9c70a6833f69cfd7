"""An organization admin's pages fit a phone: a long e-mail address in a heading and the SSO
callback URL in <code> break instead of widening the page (both did, seen in a crawl at 390 px)."""

from __future__ import annotations

import pytest

from apps.organizations.models import Membership, Role
from tests.browser.conftest import signed_in_as
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_member_and_sso_pages_fit_a_phone(page, live_server):
    org = OrganizationFactory(slug="a-hospital-with-a-rather-long-organization-slug")
    admin = member(org, Role.ORG_ADMIN, email="admin@phone.example")
    long_email = member(org, Role.RADIOLOGIST,
                        email="firstname.middlename.lastname.radiology@long-hospital-domain.example")
    signed_in_as(page, live_server.url, admin)
    page.set_viewport_size({"width": 390, "height": 844})
    membership = Membership.objects.get(user=long_email)
    for path in (f"/org/members/{membership.public_id}/", "/org/sso/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    assert long_email.email in page.goto(f"{live_server.url}/org/members/{membership.public_id}/").text()
