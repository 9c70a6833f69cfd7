from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from apps.accounts import views as accounts_views
from apps.core import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    # what a browser asks for where a page names no icon (a PDF, a JSON answer, an image)
    path("favicon.ico", core_views.favicon),
    path("i18n/setlang/", accounts_views.set_language, name="set_language"),
    path("", include("apps.accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("portal/", include("apps.education.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("apps.organizations.api_urls")),
    path("api/v1/", include("apps.sharing.api_urls")),
    path("org/", include("apps.organizations.urls")),
    path("org/audit/", include("apps.audit.urls")),
    path("", include("apps.sharing.urls")),
    path("", include("apps.imaging.urls")),
    path("", include("apps.renditions.urls")),
    path("", include("apps.deid.urls")),
    path("", include("apps.viewer.urls")),
    path("", include("apps.cases.urls")),
    path("", include("apps.core.urls")),
]

handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.permission_denied"
handler404 = "apps.core.views.page_not_found"
handler500 = "apps.core.views.server_error"

if settings.DEBUG:  # pragma: no cover
    urlpatterns += []
