"""The e-mailed link on to an organization's single sign-on carries a one-use token in its path
(``/accounts/sso/continue/<token>/``): a bearer secret, which the access lines and Django's
request warnings log without (apps.core.logs), as they do a share link's or an invitation's."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest
from django.test import Client

from apps.accounts import sso
from apps.accounts.models import SSOConfig
from apps.core.logs import Redact, redact_path
from apps.organizations.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def link_path(org_a):
    config = SSOConfig.objects.create(organization=org_a, issuer="https://idp.alpha.example", client_id="x",
                                      allowed_domains="alpha.example", enabled=True)
    user = member(org_a, Role.CLINICIAN, email="sam@alpha.example")
    return urlsplit(sso.sso_link_url(user=user, config=config)).path


def test_the_links_token_is_redacted_from_the_logged_path(link_path):
    token = link_path.removeprefix("/accounts/sso/continue/").strip("/")
    assert token and link_path == f"/accounts/sso/continue/{token}/"
    assert redact_path(link_path) == "/accounts/sso/continue/[redacted]/"
    assert redact_path(f"{link_path}?x=1") == "/accounts/sso/continue/[redacted]/?[redacted]"


def test_a_logged_request_for_the_link_names_no_token(link_path, caplog):
    """The line Django logs for the link's refused request (an altered token: 400), as the portal's
    log handler writes it."""
    altered = link_path[:-2] + "x/"
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert Client().get(altered).status_code == 400
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records
    token = altered.removeprefix("/accounts/sso/continue/").strip("/")
    formatter = logging.Formatter("%(name)s %(message)s")
    for record in records:
        assert Redact().filter(record)
        line = formatter.format(record)
        assert token not in line and "/accounts/sso/continue/[redacted]/" in line, line
