"""Production: everything secure by default; passes `manage.py check --deploy` with no warning.

Refuses to start without a secret key and allowed hosts: a missing variable is an error, never a
silent fallback.
"""

from __future__ import annotations

from portal.settings.base import *  # noqa: F403
from portal.settings.base import env, env_secret

SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The audit trail's database-level protection (triggers refusing changes to its events) exists
# only on PostgreSQL; SQLite, the embedded default, is for `make run` and trials (lightbox.E001)
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise environ.ImproperlyConfigured(
        "DATABASE_URL must name a PostgreSQL database (postgres://user:password@host:5432/name): the audit "
        "trail's protection exists only there")
LIGHTBOX_DEMO_ALLOWED = env.bool("LIGHTBOX_DEMO_ALLOWED", default=False)

SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
LANGUAGE_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-lightbox_session"
CSRF_COOKIE_NAME = "__Host-csrftoken"
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"

STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = False
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static"))
