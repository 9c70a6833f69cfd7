"""Identity for the demo world: demo users whose role requires a second factor (org admins and
external consultants by default) get an authenticator with one published demo key, so that
`make run` signs them in without a phone: ``manage.py demo_otp_code`` prints the current code.
Demo only: seed_demo refuses to run outside the embedded default."""

from __future__ import annotations

import base64

from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import mfa
from apps.accounts.models import User

# 20 bytes, hex (django-otp's format). Published on purpose: demo accounts only.
DEMO_TOTP_KEY = "6c69676874626f782d64656d6f2d746f74702d31"


def demo_totp_key_base32() -> str:
    return base64.b32encode(bytes.fromhex(DEMO_TOTP_KEY)).decode().rstrip("=")


def seed_identity(users: list[User]) -> list[str]:
    """Give each demo user who must use a second factor the demo authenticator (idempotent).
    Returns their e-mail addresses."""
    enrolled = []
    for user in users:
        if not mfa.mfa_required(user):
            continue
        TOTPDevice.objects.get_or_create(user=user, name="demo authenticator",
                                         defaults={"key": DEMO_TOTP_KEY, "confirmed": True})
        StaticDevice.objects.get_or_create(user=user, name="recovery", defaults={"confirmed": True})
        enrolled.append(user.email)
    return enrolled


def note(enrolled: list[str]) -> str:
    return ("These demo accounts sign in with a second factor (their role requires one): "
            f"{', '.join(sorted(set(enrolled)))}.\n"
            f"  Authenticator key (demo only): {demo_totp_key_base32()}\n"
            "  Or print the current code with:  python manage.py demo_otp_code")
