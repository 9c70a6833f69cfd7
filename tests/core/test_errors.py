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


@pytest.mark.django_db
def test_a_form_sent_without_its_security_token_is_explained_in_the_readers_language(clinician_a):
    """A form left open across a sign-out and sign-in: the portal's page, in Spanish, says nothing
    was saved and what to do; a script gets JSON it can recognise."""
    from tests.factories import CaseFactory

    case = CaseFactory(organization=clinician_a.memberships.first().organization)
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician_a)
    url = case.get_absolute_url() + "notes/"
    page = client.post(url, {"text": "x"}, HTTP_ACCEPT="text/html", HTTP_ACCEPT_LANGUAGE="es")
    assert page.status_code == 403 and b'data-testid="csrf-failed"' in page.content
    html = page.content.decode()
    assert "No se pudo enviar el formulario" in html and "No se ha guardado nada" in html
    assert 'lang="es"' in html and "CSRF" not in html
    script = client.post(url, {"text": "x"}, HTTP_ACCEPT="application/json")
    assert script.status_code == 403 and script.json()["error"] == "csrf_failed"
    assert "No se ha hecho nada" in client.post(url, {"text": "x"}, HTTP_ACCEPT="application/json",
                                                HTTP_ACCEPT_LANGUAGE="es").json()["detail"]
