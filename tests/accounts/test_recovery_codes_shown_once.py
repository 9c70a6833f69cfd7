"""Recovery codes are shown once, to the session they were made in. Before, the page showed the
codes not saved yet on every reload until the person ticked "I saved them": someone at a shared
tablet, or looking over a shoulder, reloaded and read them (found by a reviewer). A reload now
says they were shown and offers to make new ones, which replace them (recorded as any renewal)."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from tests.accounts.conftest import pending_device, totp_code

pytestmark = pytest.mark.django_db

URL = "/accounts/mfa/recovery-codes/"
SHOWN = 'data-testid="recovery-codes-shown"'


def _codes(user) -> list[str]:
    return list(StaticDevice.objects.get(user=user).token_set.values_list("token", flat=True))


def _enrolled(client, user) -> list[str]:
    """Enrol an authenticator through the pages; the codes it made (not saved yet)."""
    client.get("/accounts/mfa/setup/")
    response = client.post("/accounts/mfa/setup/", {"code": totp_code(pending_device(client)), "next": "/cases/"})
    assert response["Location"].startswith(URL)
    return _codes(user)


def test_the_codes_are_shown_once_and_a_reload_shows_none(admin_a, client_as):
    client = client_as(admin_a)
    codes = _enrolled(client, admin_a)
    first = client.get(URL + "?next=/cases/").content.decode()
    assert len(codes) == 10 and all(code in first for code in codes)
    assert SHOWN not in first

    again = client.get(URL + "?next=/cases/")
    html = again.content.decode()
    assert again.status_code == 200
    assert not any(code in html for code in codes)
    assert SHOWN in html and "Your recovery codes were shown already" in html
    # still to be saved: every page leads here, and none shows them
    assert client.get("/cases/")["Location"].startswith(URL)
    reloaded = client.get(URL).content.decode()
    assert not any(code in reloaded for code in codes)
    # a confirmation without the box ticked shows them no more either
    refused = client.post(URL, {"next": "/cases/"}).content.decode()
    assert not any(code in refused for code in codes) and SHOWN in refused
    # who saved them confirms it all the same
    done = client.post(URL, {"saved": "1", "next": "/cases/"})
    assert done["Location"] == "/cases/"
    assert StaticDevice.objects.get(user=admin_a).confirmed and _codes(admin_a) == codes


def test_another_session_of_the_same_person_never_sees_them(admin_a, client_as):
    client = client_as(admin_a)
    codes = _enrolled(client, admin_a)
    other = client_as(admin_a)  # the same account signed in elsewhere, its second factor passed
    device = TOTPDevice.objects.get(user=admin_a)
    assert other.post("/accounts/mfa/verify/", {"code": totp_code(device, ahead=1), "next": "/"}).status_code == 302
    html = other.get(URL).content.decode()
    assert SHOWN in html and not any(code in html for code in codes)
    # the session that made them still has its one showing
    own = client.get(URL).content.decode()
    assert all(code in own for code in codes)


def test_new_codes_made_from_the_page_replace_them_and_are_shown_once(admin_a, client_as):
    client = client_as(admin_a)
    old = _enrolled(client, admin_a)
    client.get(URL)  # shown
    assert 'action="/accounts/mfa/recovery-codes/renew/"' in client.get(URL + "?next=/cases/").content.decode()

    made = client.post("/accounts/mfa/recovery-codes/renew/", {"next": "/cases/"})
    assert made.status_code == 302 and made["Location"] == URL + "?next=%2Fcases%2F"
    new = _codes(admin_a)
    assert len(new) == 10 and not set(new) & set(old)
    assert AuditEvent.objects.filter(action="auth.mfa_recovery_codes_renewed", actor=admin_a).count() == 1
    shown = client.get(made["Location"]).content.decode()
    assert all(code in shown for code in new) and not any(code in shown for code in old)
    reloaded = client.get(made["Location"]).content.decode()
    assert not any(code in reloaded for code in new) and SHOWN in reloaded
