from __future__ import annotations

import pytest

from apps.core.api import OrgScopedViewSet

pytestmark = pytest.mark.django_db


def test_api_lists_only_the_users_organizations(client_as, admin_a, org_a, org_b):
    data = client_as(admin_a).get("/api/v1/organizations/").json()
    assert [o["id"] for o in data["results"]] == [str(org_a.public_id)]


def test_api_requires_sign_in(client):
    assert client.get("/api/v1/organizations/").status_code == 403


def test_scoped_viewset_forbids_overriding_get_queryset():
    with pytest.raises(TypeError, match="refine_queryset"):
        class Leaky(OrgScopedViewSet):
            def get_queryset(self):
                return None


def test_openapi_schema_is_served(client_as, admin_a):
    response = client_as(admin_a).get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/organizations/" in response.content


def test_openapi_schema_is_not_served_to_anonymous_visitors(client):
    response = client.get("/api/schema/")
    assert response.status_code in (401, 403)
    assert b"/api/v1/" not in response.content
