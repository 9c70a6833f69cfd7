"""Error pages are friendly and never show a stack trace."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import include, path


def _boom(request):
    raise RuntimeError("secret-internal-detail in traceback")


def _ok(request):
    return HttpResponse("ok")


urlpatterns = [path("boom/", _boom), path("", include("portal.urls"))]
handler500 = "apps.core.views.server_error"
handler404 = "apps.core.views.page_not_found"
handler403 = "apps.core.views.permission_denied"


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_500_page_has_no_stack_trace():
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert "secret-internal-detail" not in body and "Traceback" not in body


@pytest.mark.django_db
def test_404_page_is_the_portals_own(client_as, admin_a):
    response = client_as(admin_a).get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body and "Back to the dashboard" in body
    assert "Traceback" not in body and "URLconf" not in body


@pytest.mark.django_db
def test_403_page_explains_and_is_styled(client_as, clinician_a):
    response = client_as(clinician_a).get("/org/members/")
    assert response.status_code == 403
    assert "You are not allowed to do this" in response.content.decode()


@pytest.mark.django_db
def test_security_headers_are_sent(client):
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
