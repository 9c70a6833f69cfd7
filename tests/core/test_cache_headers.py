"""Browsers and proxies keep nothing the portal serves unless its view chose to
(apps.core.middleware.PrivateByDefaultMiddleware): a shared workstation's disk cache must not
hold a case page, a patient's name or a share link's page after its user has signed out.

Every GET route of a Lightbox app is discovered (as in tests/test_scoping.py), filled with an
object of the signed-in admin's organization, and each answer is checked: ``no-store``. (The
viewer's frames were ``private, no-cache``, revalidated but kept in the browser's disk cache after
access ended; they are ``no-store`` too, tests/viewer/test_views.py.)"""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from apps.sharing.services import share_link_create
from tests.factories import CaseFactory, GrantFactory
from tests.test_scoping import OBJECT_URLS, _make_in_org, _model_for_kwarg, _walk

pytestmark = pytest.mark.django_db


def _kept_out_of_caches(response) -> bool:
    directives = {d.strip().split("=")[0] for d in response.get("Cache-Control", "").lower().split(",")}
    return "no-store" in directives


def _plain_routes() -> list[str]:
    from django.urls import get_resolver

    names = []
    for pattern, name in _walk(get_resolver().url_patterns):
        callback = pattern.callback
        module = getattr(getattr(callback, "cls", None), "__module__", None) or callback.__module__
        if module.startswith("apps.") and name and not pattern.pattern.regex.groupindex:
            names.append(name)
    return names


PLAIN_ROUTES = _plain_routes()


def test_discovery_finds_pages_with_patient_data():
    assert {"cases:case_list", "dashboard", "sharing:my_shares", "audit:export_csv"} <= set(PLAIN_ROUTES)
    assert "cases:case_detail" in {name for name, _, _ in OBJECT_URLS}


@pytest.mark.parametrize("name", PLAIN_ROUTES)
def test_every_page_without_an_object_is_kept_out_of_caches(name, admin_a, client_as):
    response = client_as(admin_a).get(reverse(name))
    assert _kept_out_of_caches(response), (name, response.status_code, response.get("Cache-Control"))


@pytest.mark.parametrize(("name", "kwargs", "groups"), OBJECT_URLS, ids=[u[0] for u in OBJECT_URLS])
def test_every_object_page_is_kept_out_of_caches(name, kwargs, groups, org_a, admin_a, client_as):
    values = {k: _make_in_org(_model_for_kwarg(k), org_a).public_id for k in kwargs}
    response = client_as(admin_a).get(reverse(name, kwargs=values))
    assert _kept_out_of_caches(response), (name, response.status_code, response.get("Cache-Control"))


def test_a_case_page_with_the_patients_name_is_not_stored(org_a, admin_a, client_as):
    case = CaseFactory(organization=org_a, patient__name="Zebediah Quixote")
    response = client_as(admin_a).get(case.get_absolute_url())
    assert response.status_code == 200 and b"Zebediah Quixote" in response.content
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_share_link_and_sign_in_pages_are_not_stored(org_a, admin_a, client):
    _, token = share_link_create(grant=GrantFactory(organization=org_a), by=admin_a)
    for url in (reverse("sharing:link_open", kwargs={"token": token}), reverse("account_login")):
        response = client.get(url)
        assert response.status_code in (200, 302), url
        assert "no-store" in response["Cache-Control"], url
    # an anonymous link's GET: the page asking to confirm the opening
    org_a.anonymous_links_enabled = True
    org_a.save()
    _, token = share_link_create(grant=GrantFactory(organization=org_a, grantee=None), by=admin_a, anonymous=True)
    response = client.get(reverse("sharing:link_open", kwargs={"token": token}))
    assert response.status_code == 200 and b'data-testid="link-confirm"' in response.content
    assert "no-store" in response["Cache-Control"]


def test_static_files_keep_their_own_caching(client):
    assert finders.find("js/upload.js")
    response = client.get("/static/js/upload.js")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
