"""The authenticator's setup page, read on the phone that holds the authenticator app (found by
QA): it said only "Scan this QR code", which a phone cannot do of its own screen. It says that on
this device the key shown is typed into the app instead."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts import mfa
from apps.organizations.models import Role
from tests.accounts.conftest import pending_device
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_the_setup_page_says_to_type_the_key_on_this_phone_or_tablet(org_a):
    client = Client()
    client.force_login(member(org_a, Role.ORG_ADMIN, email="admin@alpha.example"))
    html = client.get("/accounts/mfa/setup/").content.decode()
    key = mfa.manual_key(pending_device(client))
    said = html[html.index('data-testid="totp-key-on-this-device"'):]
    said = said[said.index(">") + 1:said.index("</p>")]
    assert said == ("Setting it up on this phone or tablet? A screen cannot scan itself: type this key into your "
                    "authenticator app instead.")
    # "this key": the key is shown just before it
    assert html.index(f'data-key="{key}"') < html.index('data-testid="totp-key-on-this-device"')
