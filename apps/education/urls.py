from __future__ import annotations

from django.urls import path

from apps.education import views

app_name = "education"

urlpatterns = [
    path("", views.portal, name="portal"),
]
