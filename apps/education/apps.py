from __future__ import annotations

from django.apps import AppConfig


class EducationConfig(AppConfig):
    name = "apps.education"
    label = "education"
