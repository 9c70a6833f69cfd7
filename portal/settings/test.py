"""Test settings: the same environment-driven base, with fast hashing and eager tasks.

DATABASE_URL and REDIS_URL still choose PostgreSQL and Redis (CI sets them); with nothing set
the suite runs on SQLite.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from portal.settings.base import *  # noqa: F403
from portal.settings.base import DATABASES, STORAGES
from portal.tmpfs import private_memory_folder

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
LIGHTBOX_IN_PROCESS_BEAT = False  # tests run the schedule's tasks themselves (tests/core/test_beat.py)
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LIGHTBOX_DEMO_ALLOWED = True
MEDIA_ROOT = tempfile.mkdtemp(prefix="lightbox-test-storage-")
LIGHTBOX_UPLOAD_DIR = tempfile.mkdtemp(prefix="lightbox-test-uploads-")
for _folder in (MEDIA_ROOT, LIGHTBOX_UPLOAD_DIR):  # this process's own: removed when it exits
    atexit.register(shutil.rmtree, _folder, True)
STORAGES = {**STORAGES}
if STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
    STORAGES["default"] = {**STORAGES["default"], "OPTIONS": {
        **STORAGES["default"]["OPTIONS"], "location": MEDIA_ROOT}}
# Each test process keeps its own cache (tests clear it; a shared Redis cache would be cleared
# under the other process's feet). tests/test_settings.py checks the Redis cache itself.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The sign-in gate and step-up are on everywhere else; tests/accounts switches them back on.
# Other apps' tests sign in with force_login, without a second factor.
LIGHTBOX_MFA_ENFORCED = False
# tests/accounts/test_sso.py runs its OpenID Connect provider on 127.0.0.1 over http; other tests
# name providers at .example hosts, which resolve nowhere (tests/accounts/test_sso_domains.py checks the refusals)
LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = True
# On SQLite the test database is a file in memory (/dev/shm), not Django's in-memory database:
# that one is a single connection which the live server's request threads share, so that two
# requests at once (a viewer's frames and its heartbeat) interleaved their transactions on it
# (a session's save failed: "the session was deleted before the request completed"). With a
# file each thread has its own connection, and their transactions wait for each other, as in
# the embedded default (portal.settings.base).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _db_dir = private_memory_folder("lightbox-test-db-")
    DATABASES["default"]["TEST"] = {**DATABASES["default"].get("TEST", {}),
                                    "NAME": os.path.join(_db_dir, "test.sqlite3")}
# The audit tables refuse TRUNCATE unless the session says it is maintenance on purpose
# (apps/audit/migrations/0008_truncate_trigger.py); pytest-django empties every table with
# TRUNCATE after each transactional test. tests/audit/test_wiped.py switches it off to see the
# refusal.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    _db_options["options"] = f"{_db_options.get('options', '')} -c lightbox.audit_maintenance=on".strip()
