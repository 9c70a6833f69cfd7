from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core import demo


class Command(BaseCommand):
    help = "Create the fictional demo organizations and users (embedded default only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.LIGHTBOX_DEMO_ALLOWED:
            raise CommandError(
                "seed_demo creates accounts with a published password and is refused here. "
                "Set LIGHTBOX_DEMO_ALLOWED=1 only on a throw-away installation."
            )
        accounts = demo.seed()
        self.stdout.write(self.style.SUCCESS("Demo data ready. Every demo account's password: "
                                             f"{demo.DEMO_PASSWORD}"))
        width = max(len(a.email) for a in accounts)
        for a in accounts:
            self.stdout.write(f"  {a.email:<{width}}  {a.organization:<28}  {a.role}")
        from apps.accounts.demo import note, seed_identity
        from apps.accounts.models import User

        enrolled = seed_identity(list(User.objects.filter(email__in={a.email for a in accounts})))
        self.stdout.write(self.style.WARNING(note(enrolled)))
