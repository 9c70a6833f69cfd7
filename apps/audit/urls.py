from __future__ import annotations

from django.urls import path

from apps.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="event_list"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("export.fhir.json", views.export_fhir, name="export_fhir"),
]
