from __future__ import annotations

from django.apps import AppConfig


class DeidConfig(AppConfig):
    name = "apps.deid"
    label = "deid"
