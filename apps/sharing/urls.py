from __future__ import annotations

from django.urls import path

from apps.sharing import views

app_name = "sharing"

urlpatterns = [
    path("s/<str:token>/", views.link_open, name="link_open"),
    path("sharing/", views.my_shares, name="my_shares"),
    path("sharing/received/", views.shared_with_me, name="shared_with_me"),
    path("sharing/settings/", views.sharing_policy_edit, name="policy"),
    path("sharing/cases/<uuid:case_id>/", views.shared_case, name="shared_case"),
    path("sharing/cases/<uuid:case_id>/share/", views.case_share, name="case_share"),
    path("sharing/studies/<uuid:study_id>/share/", views.study_share, name="study_share"),
    path("sharing/grants/<uuid:grant_id>/revoke/", views.grant_revoke, name="grant_revoke"),
    path("sharing/grants/<uuid:grant_id>/extend/", views.grant_extend, name="grant_extend"),
    path("sharing/grants/<uuid:grant_id>/renew/", views.grant_renew, name="grant_renew"),
    path("sharing/grants/<uuid:grant_id>/request-original/", views.original_request_create,
         name="original_request_create"),
    path("sharing/requests/<uuid:originalrequest_id>/", views.original_request_decide,
         name="original_request_decide"),
]
