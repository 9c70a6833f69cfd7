from __future__ import annotations

from django.urls import path

from apps.deid import views

app_name = "deid"

urlpatterns = [
    path("studies/<uuid:study_id>/deid/", views.study_exports, name="study_exports"),
    path("deid/exports/<uuid:deidexport_id>/", views.export_detail, name="export_detail"),
    path("deid/exports/<uuid:deidexport_id>/status/", views.export_status, name="export_status"),
    path("deid/exports/<uuid:deidexport_id>/download/", views.export_download, name="export_download"),
]
