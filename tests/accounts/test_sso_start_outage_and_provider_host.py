""""Sign in with your organization" after a reviewer's findings on fe69503: with Redis away (its
counts rest, the broker refuses) the e-mailed link's task is dropped, never kept as an
``UnsentTask`` to be sent later (a row per POST, and one e-mail per POST at once when the broker
answers); and the pages that send a person on to an organization's provider name its host, since
any organization's administrator sets that provider and the page is on the portal's address."""

from __future__ import annotations

import html
import re
from unittest import mock

import pytest
from django.core import mail
from django.test import Client

from apps.accounts import sso
from apps.accounts.models import SSOConfig
from apps.core.models import UnsentTask
from apps.core.queue import unsent_tasks_send
from apps.organizations.models import Role
from tests.brokers import broker_unreachable
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha_sso(org_a, admin_a):
    return SSOConfig.objects.create(organization=org_a, issuer="https://idp.alpha.example/realms/staff",
                                    client_id="x", allowed_domains="alpha.example", enabled=True)


def test_with_redis_away_no_post_is_kept_to_be_e_mailed_later(alpha_sso, settings, django_capture_on_commit_callbacks):
    settings.LIGHTBOX_SSO_START_ADDRESS_MAX_EMAILS = 2
    member(alpha_sso.organization, Role.RADIOLOGIST, email="sam@alpha.example")
    pages = set()
    with broker_unreachable(), mock.patch("apps.accounts.brute_force._counted", return_value=1):  # counts rest
        for i in range(8):
            email = "sam@alpha.example" if i % 2 else f"x{i}@nowhere.example"
            with django_capture_on_commit_callbacks(execute=True):
                r = Client().post("/accounts/sso/", {"email": email}, REMOTE_ADDR="203.0.113.9")
            assert r.status_code == 200
            pages.add(re.sub(r'(value|nonce)="[^"]*"', "", r.content.decode().replace(email, "ADDRESS")))
    assert len(pages) == 1  # the same answer for a staff address and any other
    assert not UnsentTask.objects.exists()
    assert unsent_tasks_send() == 0  # the broker answers again: nothing to send
    assert mail.outbox == []


def test_the_pages_on_to_the_provider_name_its_host(alpha_sso):
    page = Client().get(f"/accounts/sso/{alpha_sso.organization.slug}/")
    assert page.status_code == 200
    assert "You will sign in at idp.alpha.example." in html.unescape(page.content.decode())
    sam = member(alpha_sso.organization, Role.CLINICIAN, email="sam@alpha.example")
    link = sso.sso_link_url(user=sam, config=alpha_sso)
    page = Client().get(link)
    assert page.status_code == 200
    assert "You will sign in at idp.alpha.example." in html.unescape(page.content.decode())
