"""Settings follow the environment; production passes `check --deploy` with no warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.servers import ROOT, clean_env

PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'eager': s.CELERY_TASK_ALWAYS_EAGER, "
    "'broker': s.CELERY_BROKER_URL, 'storage': s.STORAGES['default']['BACKEND'], 'debug': s.DEBUG, "
    "'cache': s.CACHES['default']['BACKEND'], 'renderers': s.REST_FRAMEWORK['DEFAULT_RENDERER_CLASSES']}))"
)


def _settings_under(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_the_suite_runs_on_the_database_the_environment_names():
    wanted = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert connection.vendor == wanted
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1


def test_with_nothing_set_it_is_the_embedded_default(tmp_path):
    got = _settings_under(clean_env(DJANGO_SETTINGS_MODULE="portal.settings.local", LIGHTBOX_VAR_DIR=str(tmp_path)))
    assert got == {"engine": "django.db.backends.sqlite3", "eager": True, "broker": "memory://localhost/",
                   "storage": "apps.imaging.storage.DirectFileSystemStorage", "debug": False,
                   "cache": "django.core.cache.backends.locmem.LocMemCache",
                   "renderers": ["rest_framework.renderers.JSONRenderer"]}
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0  # the generated key is private


def test_the_embedded_default_runs_a_task_without_a_broker_warning(tmp_path):
    """An eager task takes a producer all the same; its connection must not log a warning."""
    probe = ("import django, logging, sys; django.setup(); from django.core.management import call_command; "
             "call_command('migrate', verbosity=0); logging.basicConfig(stream=sys.stdout); "
             "from apps.sharing.tasks import share_expiries_record_task as t; t.delay(); print('DONE')")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=clean_env(DJANGO_SETTINGS_MODULE="portal.settings.local", LIGHTBOX_VAR_DIR=str(tmp_path)))
    assert "DONE" in out.stdout, out.stderr
    assert "WARNING" not in out.stdout + out.stderr


def test_variables_switch_to_postgresql_redis_and_s3(tmp_path):
    got = _settings_under(clean_env(
        DJANGO_SETTINGS_MODULE="portal.settings.local", LIGHTBOX_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgres://u:p@db.internal:5432/lightbox", REDIS_URL="redis://cache.internal:6379/0",
        DJANGO_STORAGE_BACKEND="s3", LIGHTBOX_S3_BUCKET="studies", LIGHTBOX_S3_ENDPOINT_URL="http://s3.internal",
    ))
    assert got == {"engine": "django.db.backends.postgresql", "eager": False, "broker": "redis://cache.internal:6379/0",
                   "storage": "storages.backends.s3.S3Storage", "debug": False,
                   "cache": "apps.core.cache.ResilientRedisCache",
                   "renderers": ["rest_framework.renderers.JSONRenderer"]}


def test_debug_only_when_asked(tmp_path):
    got = _settings_under(clean_env(DJANGO_SETTINGS_MODULE="portal.settings.local", LIGHTBOX_VAR_DIR=str(tmp_path),
                                    DJANGO_DEBUG="1"))
    assert got["debug"] is True
    assert got["renderers"][-1] == "rest_framework.renderers.BrowsableAPIRenderer"  # a developer's HTML API pages


PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "portal.settings.production",
    "DJANGO_SECRET_KEY": "a" * 20 + "-production-secret-key-with-enough-entropy-1234567890",
    "DJANGO_ALLOWED_HOSTS": "lightbox.hospital.example",
    "DATABASE_URL": "postgres://lightbox@db.internal:5432/lightbox",
    "REDIS_URL": "redis://cache.internal:6379/0",
}


def test_production_settings_pass_check_deploy_with_no_warning(tmp_path):
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), **PRODUCTION_ENV)
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output.upper().replace("--FAIL-LEVEL WARNING", "")
    assert "System check identified no issues" in output


@pytest.mark.parametrize(("extra", "warned"), [
    ({"DJANGO_ALLOWED_HOSTS": "localhost,lightbox.hospital.example"}, True),
    ({"DJANGO_ALLOWED_HOSTS": "127.0.0.1,lightbox.hospital.example"}, True),
    ({"DJANGO_ALLOWED_HOSTS": "localhost,lightbox.hospital.example",
      "LIGHTBOX_BASE_URL": "https://lightbox.hospital.example"}, False),
    ({"DJANGO_ALLOWED_HOSTS": "lightbox.hospital.example,localhost"}, False),
])
def test_check_deploy_warns_when_links_sent_by_e_mail_would_point_at_this_machine(tmp_path, extra, warned):
    """An invitation sent by a Celery task or manage.py has no request to take the address
    from: it uses LIGHTBOX_BASE_URL, else the first allowed host, which may be the probe's."""
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), **{**PRODUCTION_ENV, **extra})
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert ("lightbox.W001" in output) is warned, output
    assert (result.returncode != 0) is warned


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), **{**PRODUCTION_ENV, "DJANGO_SECRET_KEY": ""})
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_the_demo(tmp_path):
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), **PRODUCTION_ENV)
    result = subprocess.run([sys.executable, "manage.py", "seed_demo"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "refused" in result.stderr


POOL_PROBE = ("import django, json; django.setup(); from django.conf import settings as s; "
              "print(json.dumps(s.DATABASES['default'].get('OPTIONS', {}).get('pool')))")


@pytest.mark.parametrize(("extra", "pooled"), [
    ({}, {"min_size": 1, "max_size": 16, "timeout": 3}),
    ({"DJANGO_DB_POOL_MAX": "4"}, {"min_size": 1, "max_size": 4, "timeout": 3}),
    ({"DJANGO_DB_POOL_MAX": "0"}, None),
    ({"DJANGO_CONN_MAX_AGE": "60"}, None),  # persistent connections instead (Django allows one or the other)
])
def test_postgresql_connections_are_pooled_per_process(tmp_path, extra, pooled):
    env = clean_env(DJANGO_SETTINGS_MODULE="portal.settings.local", LIGHTBOX_VAR_DIR=str(tmp_path),
                    DATABASE_URL="postgres://u:p@db.internal:5432/lightbox", **extra)
    out = subprocess.run([sys.executable, "-c", POOL_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == pooled


@pytest.mark.django_db
def test_the_suite_on_postgresql_takes_its_connections_from_the_pool():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no pool")
    assert connection.pool is not None and connection.pool.max_size == 16


def test_the_server_parses_http_with_httptools():
    """uvicorn takes httptools when it is installed (its C parser received a 210 MB upload in
    0.40 s where h11 took 0.54-0.59 s, docs/performance.md, seventh pass): it is pinned."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert AutoHTTPProtocol is HttpToolsProtocol


COUNT_FAILURES = (
    "import django, sys; django.setup(); from django.core.cache import cache; from django.test import RequestFactory; "
    "from apps.accounts import brute_force as b; r = RequestFactory().get('/', REMOTE_ADDR=sys.argv[1]); "
    "[b.invitation_token_failed(r) for _ in range(int(sys.argv[2]))]; print('COUNT', cache.get(b._invite_key(r)))"
)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")
def test_with_redis_every_web_process_counts_the_same_invitation_failures(tmp_path):
    """Two processes, as two web workers: the second sees the first one's failed tokens."""
    import uuid

    # one of its own (IPv6 documentation range), so runs sharing a Redis do not meet (1 in 250 did)
    u = uuid.uuid4().hex
    address = f"2001:db8:{u[:4]}:{u[4:8]}::{u[8:12]}"
    env = clean_env(DJANGO_SETTINGS_MODULE="portal.settings.local", LIGHTBOX_VAR_DIR=str(tmp_path),
                    REDIS_URL=os.environ["REDIS_URL"])

    def fail(times: int) -> str:
        out = subprocess.run([sys.executable, "-c", COUNT_FAILURES, address, str(times)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr

    try:
        assert fail(3) == "COUNT 3"
        assert fail(2) == "COUNT 5"
    finally:
        subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.core.cache import cache; "
                        f"cache.delete('lightbox:invite-fail:{address}')"], cwd=ROOT, env=env, timeout=60)


def test_production_collects_static_files_and_every_template_reference_is_in_the_manifest(tmp_path):
    """Production serves static files from collectstatic's manifest (WhiteNoise): a reference to
    a file that is not collected fails the page with a 500 there, and only there."""
    import re

    root = tmp_path / "static"
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), DJANGO_STATIC_ROOT=str(root), **PRODUCTION_ENV)
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((root / "staticfiles.json").read_text())["paths"]
    pattern = re.compile(r"""\{%\s*static\s+['"]([^'"]+)['"]""")
    references = {ref for folder in ("templates", "apps") for path in (ROOT / folder).rglob("*.html")
                  for ref in pattern.findall(path.read_text())}
    assert references, "no {% static %} reference found: the pattern no longer matches the templates"
    assert not references - set(manifest)
