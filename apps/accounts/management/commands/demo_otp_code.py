from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP

from apps.accounts.demo import DEMO_TOTP_KEY


class Command(BaseCommand):
    help = "Print the current second-factor code of the demo accounts (embedded default only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.LIGHTBOX_DEMO_ALLOWED:
            raise CommandError("demo_otp_code is for the demo installation only.")
        self.stdout.write(f"{TOTP(bytes.fromhex(DEMO_TOTP_KEY)).token():06d}")
