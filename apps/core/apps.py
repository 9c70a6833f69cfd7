from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        from apps.core import checks, logs  # noqa: F401 - checks registers the system checks
        from apps.core.admin import third_party_admins_read_only

        logs.install()
        # after django.contrib.admin's autodiscovery (its ready() ran first: it is listed first)
        third_party_admins_read_only()
