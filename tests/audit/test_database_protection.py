"""The audit trail's database-level protection (its triggers) exists only on PostgreSQL:
production refuses another database, ``check --deploy`` reports it (lightbox.E001) and
``verify_audit`` says so; the embedded default (SQLite, ``make run``) keeps working."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from apps.audit import actions
from apps.audit.management.commands import verify_audit
from apps.audit.services import record
from tests.servers import ROOT, clean_env

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "portal.settings.production",
    "DJANGO_SECRET_KEY": "a" * 20 + "-production-secret-key-with-enough-entropy-1234567890",
    "DJANGO_ALLOWED_HOSTS": "lightbox.hospital.example",
    "REDIS_URL": "redis://cache.internal:6379/0",
}


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_production_refuses_sqlite(tmp_path):
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                    **PRODUCTION)
    result = _manage(env, "check")
    assert result.returncode != 0
    assert "DATABASE_URL must name a PostgreSQL database" in result.stderr
    # with no DATABASE_URL at all (the embedded default's SQLite) just the same
    result = _manage(clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), **PRODUCTION), "check")
    assert result.returncode != 0 and "DATABASE_URL must name a PostgreSQL database" in result.stderr


def test_check_deploy_fails_on_sqlite_and_the_embedded_default_still_runs(tmp_path):
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path))   # make run: local settings, SQLite under var/
    deploy = _manage(env, "check", "--deploy")
    assert deploy.returncode != 0
    assert "lightbox.E001" in deploy.stderr and "exist only on PostgreSQL" in deploy.stderr
    plain = _manage(env, "check")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "lightbox.E001" not in plain.stdout + plain.stderr


def test_check_deploy_on_postgresql_has_no_such_error(tmp_path):
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), DATABASE_URL="postgres://lightbox@db.internal:5432/lightbox",
                    **PRODUCTION)
    result = _manage(env, "check", "--deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lightbox.E001" not in result.stdout + result.stderr


def _verify() -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("verify_audit", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_verify_audit_warns_that_sqlite_has_no_database_protection(org_a, monkeypatch):
    record(action=actions.CASE_VIEWED, organization=org_a)
    out, err = _verify()
    assert "Audit trail intact" in out
    assert ("no database-level protection" in err) is (connection.vendor != "postgresql")
    monkeypatch.setattr(verify_audit, "audit_database_vendor", lambda: "sqlite")
    out, err = _verify()
    assert "Audit trail intact" in out  # still verified, and said what it cannot prove
    assert "audit trail is in a sqlite database, which has no database-level protection" in err
    assert "anchors kept off the host" in err
