from __future__ import annotations

from django.apps import AppConfig


class ViewerConfig(AppConfig):
    name = "apps.viewer"
    label = "viewer"

    def ready(self) -> None:
        from apps.viewer import signals  # noqa: F401
