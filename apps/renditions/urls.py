from __future__ import annotations

from django.urls import path

from apps.renditions import views

app_name = "renditions"

urlpatterns = [
    path("studies/<uuid:study_id>/download/", views.study_download, name="study_download"),
    path("cases/<uuid:case_id>/download/", views.case_download, name="case_download"),
]
