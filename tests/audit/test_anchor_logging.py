"""The anchor lines (each chain's head, logged hourly) are the defence against a rewrite by the
database's owner: they must reach the log whatever level the rest of the portal logs at."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import ROOT, clean_env

PROBE = (
    "import django, logging; django.setup(); from apps.audit.chain import Anchor, anchor_logger; "
    "anchor_logger.info('%s', Anchor(7, 3, 'ab' * 32).line()); "
    "logging.getLogger('apps.cases').info('an ordinary info line')"
)


@pytest.mark.parametrize("settings", ["portal.settings.production", "portal.settings.local"])
def test_anchor_lines_are_logged_at_warning_level(tmp_path, settings):
    env = clean_env(DJANGO_LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE=settings, LIGHTBOX_VAR_DIR=str(tmp_path),
                    DJANGO_SECRET_KEY="a" * 20 + "-production-secret-key-with-enough-entropy-1234567890",
                    DJANGO_ALLOWED_HOSTS="lightbox.hospital.example",
                    DATABASE_URL="postgres://lightbox@db.internal:5432/lightbox")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert f"INFO lightbox.audit.anchors audit-anchor chain=7 seq=3 sha256={'ab' * 32}" in out.stderr
    assert "an ordinary info line" not in out.stderr  # the rest keeps the level asked for
