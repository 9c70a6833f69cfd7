from __future__ import annotations

from django.apps import AppConfig


class RenditionsConfig(AppConfig):
    name = "apps.renditions"
    label = "renditions"
