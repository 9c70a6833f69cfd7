from __future__ import annotations

from django.urls import path

from apps.accounts import views

app_name = "accounts"

urlpatterns = [
    path("accounts/activity/", views.activity, name="activity"),
    # before allauth's own page at this address (portal/urls.py includes these first)
    path("accounts/email/", views.email_addresses_not_offered),
    path("accounts/login/", views.sign_in),  # in an invitation's language, when one sent the browser there
    path("accounts/mfa/setup/", views.mfa_setup, name="mfa_setup"),
    path("accounts/mfa/verify/", views.mfa_verify, name="mfa_verify"),
    path("accounts/mfa/step-up/", views.step_up, name="step_up"),
    path("accounts/mfa/continue/", views.continue_download, name="continue_download"),
    path("accounts/mfa/recovery-codes/", views.recovery_codes, name="recovery_codes"),
    path("accounts/mfa/", views.security, name="security"),
    path("accounts/mfa/recovery-codes/renew/", views.recovery_codes_renew, name="recovery_codes_renew"),
    path("accounts/sso/", views.sso_start, name="sso_start"),
    path("accounts/sso/continue/<str:token>/", views.sso_continue, name="sso_continue"),
    path("accounts/sso/<slug:slug>/", views.sso_organization, name="sso_organization"),
    path("accounts/oidc/<str:provider_id>/login/", views.sso_provider_login),
    path("accounts/oidc/<str:provider_id>/login/callback/", views.sso_provider_callback),
    path("org/members/<uuid:membership_id>/reset-mfa/", views.member_mfa_reset, name="member_mfa_reset"),
    path("invite/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("org/invitations/", views.invitation_list, name="invitation_list"),
    path("org/invitations/new/", views.invitation_send, name="invitation_send"),
    path("org/invitations/choices/", views.invitation_choices, name="invitation_choices"),
    path("org/invitations/<uuid:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("org/invitations/<uuid:invitation_id>/resend/", views.invitation_resend, name="invitation_resend"),
    path("org/sso/", views.sso_settings, name="sso_settings"),
    path("cases/<uuid:case_id>/invite-patient/", views.patient_invite, name="patient_invite"),
]
