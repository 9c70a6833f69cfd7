from __future__ import annotations

from django.urls import path

from apps.cases import views

app_name = "cases"

urlpatterns = [
    path("cases/", views.case_list, name="case_list"),
    path("cases/new/", views.case_create, name="case_create"),
    path("cases/choices/", views.case_choices, name="case_choices"),
    path("cases/<uuid:case_id>/", views.case_detail, name="case_detail"),
    path("cases/<uuid:case_id>/edit/", views.case_edit, name="case_edit"),
    path("cases/<uuid:case_id>/patient/", views.patient_edit, name="patient_edit"),
    path("cases/<uuid:case_id>/close/", views.case_close, name="case_close"),
    path("cases/<uuid:case_id>/reopen/", views.case_reopen, name="case_reopen"),
    path("cases/<uuid:case_id>/notes/", views.note_add, name="note_add"),
    path("cases/<uuid:case_id>/attachments/", views.attachment_add, name="attachment_add"),
    path("attachments/<uuid:attachment_id>/", views.attachment_download, name="attachment_download"),
    path("boards/", views.board_list, name="board_list"),
    path("boards/new/", views.board_create, name="board_create"),
    path("boards/choices/", views.board_choices, name="board_choices"),
    path("boards/<uuid:boardsession_id>/", views.board_detail, name="board_detail"),
    path("boards/<uuid:boardsession_id>/edit/", views.board_edit, name="board_edit"),
    path("boards/<uuid:boardsession_id>/start/", views.board_start, name="board_start"),
    path("boards/<uuid:boardsession_id>/end/", views.board_end, name="board_end"),
]
