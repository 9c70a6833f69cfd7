from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from django.test import override_settings

from tests.servers import clean_env, uvicorn_server

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ok_when_every_part_is_reachable(client, settings):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


@override_settings(REDIS_URL="redis://127.0.0.1:1/0", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
def test_readyz_names_an_unreachable_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


def test_readyz_names_unreachable_storage(client, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the storage root should be")
    storages = {
        "default": {"BACKEND": "apps.imaging.storage.DirectFileSystemStorage",
                    "OPTIONS": {"location": str(blocker / "root")}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["storage"]


@pytest.mark.slow
def test_readyz_answers_503_naming_the_database_when_it_is_unreachable(tmp_path):
    """A real server process whose database cannot be reached: nothing listens on port 1."""
    env = clean_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/lightbox",
                    LIGHTBOX_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portal.settings.local")
    with uvicorn_server(env) as base:
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{base}/readyz", timeout=10)
        assert exc.value.code == 503
        body = json.loads(exc.value.read())
        assert body["failing"] == ["database"]
        assert body["checks"]["database"].startswith("unreachable")
        # the process itself is up
        assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200


def test_the_site_icon_is_named_by_pages_and_served(client):
    """Browsers ask for /favicon.ico where a page names no icon: it was a 404 on every first visit."""
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)
    page = client.get("/accounts/login/").content.decode()
    assert f'<link rel="icon" href="{response["Location"]}"' in page
