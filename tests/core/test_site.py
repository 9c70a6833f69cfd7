"""The portal's own address in links made without a request (apps.core.site): one rule for the
invitation e-mail, allauth's set-password e-mail and the link in a notice."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from apps.accounts.services import invitation_create
from apps.core.site import site_base_url, site_request
from apps.organizations.models import Role
from apps.organizations.services import password_link_send
from apps.sharing.services import notify
from tests.factories import UserFactory


@pytest.mark.parametrize(("hosts", "protocol", "base_url", "expected"), [
    (["lightbox.hospital.example", "localhost"], "https", "", "https://lightbox.hospital.example"),
    (["localhost", "127.0.0.1"], "http", "", "http://localhost"),
    (["*", "lightbox.hospital.example"], "https", "", "https://lightbox.hospital.example"),
    ([".hospital.example"], "https", "", "https://hospital.example"),
    (["[::1]"], "http", "", "http://[::1]"),
    (["*"], "http", "", "http://localhost"),
    ([], "http", "", "http://localhost"),
    # the setting wins; its scheme and host only (reverse gives the whole path)
    (["lightbox.hospital.example"], "https", "https://portal.hospital.example:8443/", "https://portal.hospital.example:8443"),
    (["lightbox.hospital.example"], "https", "https://portal.hospital.example/lightbox", "https://portal.hospital.example"),
    # no scheme: not an address, so unused
    (["lightbox.hospital.example"], "https", "portal.hospital.example", "https://lightbox.hospital.example"),
])
def test_site_base_url(settings, hosts, protocol, base_url, expected):
    settings.ALLOWED_HOSTS, settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL = hosts, protocol
    settings.LIGHTBOX_BASE_URL = base_url
    assert site_base_url() == expected
    request = site_request()
    assert request.build_absolute_uri("/x/") == expected + "/x/"
    assert request.is_secure() == expected.startswith("https:")


def _links(message) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>]+", message.body)


@pytest.mark.django_db
@pytest.mark.parametrize(("base_url", "expected"), [
    ("", "https://lightbox.hospital.example/"),
    ("https://portal.hospital.example", "https://portal.hospital.example/"),
])
def test_every_mail_sent_without_a_request_links_to_the_same_address(settings, org_a, admin_a, base_url, expected):
    settings.ALLOWED_HOSTS = ["lightbox.hospital.example", "localhost"]
    settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
    settings.LIGHTBOX_BASE_URL = base_url

    invitation_create(organization=org_a, by=admin_a, email="new.clinician@alpha.example", role=Role.CLINICIAN)
    newcomer = UserFactory(email="newcomer@alpha.example", password=None)
    assert password_link_send(user=newcomer)
    notify(user=admin_a, organization_id=org_a.pk, verb="test", message="Something happened.",
           url="/sharing/received/")

    invitation, set_password, notice = mail.outbox
    assert [link.startswith(expected + "invite/") for link in _links(invitation)] == [True]
    assert [link.startswith(expected + "accounts/password/reset/key/") for link in _links(set_password)] == [True]
    assert _links(notice) == [expected + "sharing/received/"]
