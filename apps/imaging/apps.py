from __future__ import annotations

from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "apps.imaging"
    label = "imaging"
