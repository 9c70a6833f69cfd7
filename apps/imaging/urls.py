from __future__ import annotations

from django.urls import path

from apps.imaging import tus, views

app_name = "imaging"

urlpatterns = [
    path("api/v1/uploads/", tus.uploads_root, name="tus_root"),
    path("api/v1/uploads/<uuid:upload_id>/", tus.upload_detail, name="tus_upload"),
    path("studies/upload/", views.upload_page, name="upload"),
    path("studies/upload/reach/", views.upload_case_reach, name="upload_case_reach"),
    path("studies/uploads/states/", views.upload_states, name="upload_states"),
    path("studies/uploads/<uuid:ingestjob_id>/", views.upload_report, name="upload_report"),
    path("studies/<uuid:study_id>/", views.study_detail, name="study_detail"),
    path("studies/<uuid:study_id>/delete/", views.study_delete, name="study_delete"),
    path("studies/<uuid:study_id>/attach/", views.study_attach, name="study_attach"),
]
