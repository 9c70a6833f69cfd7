from __future__ import annotations

from django.urls import path

from apps.viewer import views

app_name = "viewer"

urlpatterns = [
    path("studies/<uuid:study_id>/viewer/", views.viewer_page, name="viewer"),
    path("viewer/studies/<uuid:study_id>/close", views.viewer_close, name="close"),
    path("viewer/studies/<uuid:study_id>/access", views.viewer_access, name="access"),
    path("viewer/studies/<uuid:study_id>/heartbeat", views.viewer_heartbeat, name="heartbeat"),
    path("viewer/studies/<uuid:study_id>/series/<uuid:series_id>/instances", views.series_instances,
         name="series_instances"),
    path("viewer/instances/<uuid:instance_id>/frame", views.frame, name="frame"),
]
