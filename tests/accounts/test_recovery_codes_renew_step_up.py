"""'Make new recovery codes' is a button (a POST): when the second factor was passed too long ago,
the step-up returns to the page the button is on, its ``next`` kept, for the person to press it
again. It returned to the button's own address, which answers a POST only: a 405, the page's
``next`` lost (found by a reviewer)."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_static.models import StaticDevice

from apps.audit.models import AuditEvent
from tests.accounts.conftest import stale_second_factor_client, totp_code

pytestmark = pytest.mark.django_db

URL = "/accounts/mfa/recovery-codes/"
RENEW = "/accounts/mfa/recovery-codes/renew/"


def _codes(user) -> set[str]:
    return set(StaticDevice.objects.get(user=user).token_set.values_list("token", flat=True))


def _renewed(user) -> int:
    return AuditEvent.objects.filter(action="auth.mfa_recovery_codes_renewed", actor=user).count()


def test_from_the_recovery_codes_page_the_step_up_returns_there_with_its_next(admin_a, settings):
    settings.LIGHTBOX_MFA_ENFORCED = True
    client, device = stale_second_factor_client(admin_a)
    StaticDevice.objects.filter(user=admin_a).update(confirmed=False)  # shown, not saved yet
    page = client.get(URL + "?next=/cases/").content.decode()
    assert 'data-testid="recovery-codes-shown"' in page and f'action="{RENEW}"' in page
    old = _codes(admin_a)

    asked = client.post(RENEW, {"next": "/cases/"})
    assert asked.status_code == 302 and asked["Location"].startswith("/accounts/mfa/step-up/")
    checked = client.post(asked["Location"], {"code": totp_code(device, ahead=1)})
    assert checked.status_code == 302 and checked["Location"] == URL + "?next=%2Fcases%2F"
    back = client.get(checked["Location"])
    assert back.status_code == 200
    assert 'name="next" value="/cases/"' in back.content.decode()
    assert _codes(admin_a) == old and _renewed(admin_a) == 0  # nothing made before the press

    made = client.post(RENEW, {"next": "/cases/"})  # pressed again, the second factor recent
    assert made.status_code == 302 and made["Location"] == URL + "?next=%2Fcases%2F"
    assert _codes(admin_a).isdisjoint(old) and _renewed(admin_a) == 1


def test_from_the_security_page_the_step_up_returns_to_it(admin_a, settings):
    settings.LIGHTBOX_MFA_ENFORCED = True
    client, device = stale_second_factor_client(admin_a)
    assert f'action="{RENEW}"' in client.get("/accounts/mfa/").content.decode()

    asked = client.post(RENEW)
    assert asked.status_code == 302 and asked["Location"].startswith("/accounts/mfa/step-up/")
    checked = client.post(asked["Location"], {"code": totp_code(device, ahead=1)})
    assert checked["Location"] == "/accounts/mfa/"
    assert client.get(checked["Location"]).status_code == 200
    assert _renewed(admin_a) == 0
