"""No patient's name (a case search's query string) and no bearer secret (a share link's or an
invitation's token) in the portal's log lines."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from apps.core.logs import redact_path
from tests.servers import clean_env, uvicorn_server


@pytest.mark.parametrize(("path", "logged"), [
    ("/cases/?q=Doe%5EJane&status=", "/cases/?[redacted]"),
    ("/s/Zx9-secret-token/", "/s/[redacted]/"),
    ("/s/Zx9-secret-token/?download=1", "/s/[redacted]/?[redacted]"),
    ("/invite/abc.def-ghi/", "/invite/[redacted]/"),
    ("/accounts/password/reset/key/1-set-password/", "/accounts/password/reset/key/[redacted]/"),
    ("/accounts/confirm-email/MTQ:1tA:xyz/", "/accounts/confirm-email/[redacted]/"),
    ("/cases/7d0c5a55-2b1e-4c57-9a53-5f6d3c0c9b1f/", "/cases/7d0c5a55-2b1e-4c57-9a53-5f6d3c0c9b1f/"),
    ("/sharing/received/", "/sharing/received/"),
    ("/static/css/lightbox.css", "/static/css/lightbox.css"),
])
def test_paths_are_logged_without_queries_or_secrets(path, logged):
    assert redact_path(path) == logged


@pytest.mark.slow
def test_a_real_server_logs_neither_a_search_nor_a_link_token(tmp_path):
    """The server as ``make serve`` runs it, access lines on. Its database is unreachable, so the
    link's request fails with a 500 and Django logs its path too (the request logger)."""
    env = clean_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/lightbox",
                    LIGHTBOX_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portal.settings.local")
    log = tmp_path / "server.log"
    with uvicorn_server(env, log=log) as base:
        urllib.request.urlopen(f"{base}/healthz?q=Doe%5EJane", timeout=10).close()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/s/Zx9SecretToken42/?q=Roe%5EJohn", timeout=10)
    output = log.read_text(errors="replace")
    assert "Doe" not in output and "Roe" not in output and "Zx9SecretToken42" not in output, output
    # still logged, with the marker: the access line and Django's line for the failed request
    assert '"GET /healthz?[redacted] HTTP/1.1" 200' in output, output
    assert '"GET /s/[redacted]/?[redacted] HTTP/1.1"' in output, output
    assert "django.request Internal Server Error: /s/[redacted]/" in output, output
