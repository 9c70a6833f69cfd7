from __future__ import annotations

from django.urls import path

from apps.organizations import views

app_name = "organizations"

urlpatterns = [
    path("switch/<uuid:organization_id>/", views.organization_switch, name="switch"),
    path("members/", views.member_list, name="members"),
    path("members/<uuid:membership_id>/", views.membership_edit, name="membership_edit"),
    path("settings/", views.organization_settings, name="settings"),
]
