"""Settings shared by every environment, read from the environment.

With nothing set, Lightbox runs on the embedded default: SQLite, Celery eager and local file
storage under ``var/``. ``DATABASE_URL``, ``REDIS_URL``, ``DJANGO_STORAGE_BACKEND`` and the
secret variables switch to PostgreSQL, Redis and S3-compatible storage. Every variable is
listed in the README.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()


def env_secret(name: str, default: str | None = None) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker/K8s secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


VAR_DIR = Path(env.str("LIGHTBOX_VAR_DIR", default=str(BASE_DIR / "var")))


def _embedded_secret_key() -> str:
    """The embedded default keeps a random key in var/ so sessions survive restarts.

    There is no hard-coded key anywhere: production settings refuse to start without one.
    """
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or _embedded_secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "apps.core.views.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "csp",
    # Lightbox apps
    "apps.core",
    "apps.accounts",
    "apps.organizations",
    "apps.audit",
    "apps.cases",
    "apps.sharing",
    "apps.imaging",
    "apps.education",
    "apps.viewer",
    "apps.renditions",
    "apps.deid",
]

MIDDLEWARE = [
    "apps.core.middleware.AfterResponseMiddleware",  # eager tasks that wait for the response (apps.core.queue)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.middleware.PrivateByDefaultMiddleware",  # no-store unless a view chose its caching
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "apps.core.middleware.TimeZoneMiddleware",  # times in the reader's own zone
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.sharing.middleware.PolicyMemoMiddleware",  # a person's live-grant filters built once a request
    "django_otp.middleware.OTPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "apps.accounts.middleware.UserLanguageMiddleware",  # a signed-in person's own language
    "apps.organizations.middleware.ActiveOrganizationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.accounts.middleware.AccessGateMiddleware",
    "apps.audit.middleware.DenialAuditMiddleware",  # a policy denial rolled back with the view's transaction
    "apps.imaging.middleware.StorageUnavailableMiddleware",  # stored files unreachable: a 503 saying so
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"
# a file uploaded with a form past FILE_UPLOAD_MAX_MEMORY_SIZE (a report PDF) waits encrypted, never
# in clear in the temporary folder (apps.core.uploads); small ones in memory, as Django's default
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "apps.core.uploads.EncryptedFileUploadHandler",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.organizations.context_processors.organizations",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite under var/ unless DATABASE_URL is set (postgres://user:pass@host:5432/name).
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'lightbox.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A dead database must fail readiness quickly, not hang the probe.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
    # Under ASGI every request runs in its own thread, so connections are not kept per thread
    # (CONN_MAX_AGE 0): each process keeps a pool instead (psycopg_pool), sparing a connection
    # set-up and tear-down per request (about half the time of a small request here)
    _pool_max = env.int("DJANGO_DB_POOL_MAX", default=16)
    if _pool_max and not DATABASES["default"]["CONN_MAX_AGE"]:
        DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 1, "max_size": _pool_max, "timeout": 3}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default is written by several threads (uvicorn runs each request in its own)
    # and, beside it, by a Celery worker. A transaction that read, then wrote while another held
    # the database failed at once with "database is locked" (SQLite gives up on such an upgrade
    # rather than wait). Transactions take the write lock when they begin (IMMEDIATE) and wait
    # for it up to ``timeout`` seconds; WAL lets reads go on while one writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "apps.accounts.brute_force.AxesBackend",  # first: refuses locked-out accounts
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "account_login"

ACCOUNT_ADAPTER = "apps.accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "none"  # accounts are made by admins or invitations, not open sign-up
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Lightbox] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = env.str("LIGHTBOX_HTTP_PROTOCOL", default="http")
# the portal's address in links made without a request (e-mails from commands and tasks,
# notices); empty: LIGHTBOX_HTTP_PROTOCOL over the first of ALLOWED_HOSTS (apps.core.site)
LIGHTBOX_BASE_URL = env.str("LIGHTBOX_BASE_URL", default="")

# --- Sessions and cookies -------------------------------------------------------------------
SESSION_COOKIE_NAME = env.str("DJANGO_SESSION_COOKIE_NAME", default="lightbox_session")
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_NAME = "lightbox_language"
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Security headers (stricter values in production.py) ------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

# --- Internationalization -------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("es", _("Spanish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# dates as year-month-day and a 24-hour clock in every language (portal/formats)
FORMAT_MODULE_PATH = ["portal.formats"]
USE_I18N = True
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_TZ = True

# --- Static files and storage ---------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = None  # collectstatic is a production step (production.py)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True  # serve straight from the source tree; production collects static

MEDIA_ROOT = Path(env.str("LIGHTBOX_STORAGE_ROOT", default=str(VAR_DIR / "storage")))
STORAGE_BACKEND = env.str("DJANGO_STORAGE_BACKEND", default="filesystem")  # filesystem | s3
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("LIGHTBOX_S3_BUCKET"),
            "endpoint_url": env.str("LIGHTBOX_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("LIGHTBOX_S3_REGION", default=None),
            "access_key": env_secret("LIGHTBOX_S3_ACCESS_KEY_ID"),
            "secret_key": env_secret("LIGHTBOX_S3_SECRET_ACCESS_KEY"),
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
elif STORAGE_BACKEND == "filesystem":
    _default_storage = {
        "BACKEND": "apps.imaging.storage.DirectFileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "directory_permissions_mode": 0o700,
                    "file_permissions_mode": 0o600},
    }
else:  # pragma: no cover - configuration error, shown at start-up
    raise environ.ImproperlyConfigured(
        f"DJANGO_STORAGE_BACKEND must be 'filesystem' or 's3', not {STORAGE_BACKEND!r}"
    )
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Imaging: encryption at rest, uploads, ingest limits (apps.imaging) ---------------------


def _embedded_master_keys() -> str:
    """The embedded default keeps one generated master key in var/ (like the secret key)."""
    key_file = VAR_DIR / "master_keys"
    if key_file.exists():
        return key_file.read_text().strip()
    import base64

    VAR_DIR.mkdir(parents=True, exist_ok=True)
    value = "local1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    key_file.write_text(value)
    key_file.chmod(0o600)
    return value


# "keyid:base64key,..." (32-byte AES keys); the first wraps new data keys, the others still unwrap
LIGHTBOX_MASTER_KEYS = env_secret("LIGHTBOX_MASTER_KEYS") or _embedded_master_keys()
# tus staging files (encrypted, outside the storage root); shared by every web and worker process
LIGHTBOX_UPLOAD_DIR = Path(env.str("LIGHTBOX_UPLOAD_DIR", default=str(VAR_DIR / "uploads")))
LIGHTBOX_UPLOAD_EXPIRY_HOURS = env.int("LIGHTBOX_UPLOAD_EXPIRY_HOURS", default=24)
# the upload page sends a file in requests of at most this many bytes (tus PATCH bodies): lower it
# behind a proxy that limits request bodies; what a dropped connection loses is at most one of them
LIGHTBOX_UPLOAD_CHUNK_BYTES = max(64 * 1024, env.int("LIGHTBOX_UPLOAD_CHUNK_BYTES", default=16 * 1024 * 1024))
# the staged file of an upload whose ingest job failed is kept this long after the failure, for
# `manage.py ingest --resume`, then discarded (apps.imaging.uploads.failed_uploads_discard)
LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS = env.int("LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS", default=14)
# a Celery worker reads a zip's entries while the upload still arrives (apps.imaging.follow)
LIGHTBOX_INGEST_FOLLOW = env.bool("LIGHTBOX_INGEST_FOLLOW", default=True)
# work queued and not started after this long (or this long after it was last sent again) was lost
# by the task queue: it is sent again, three times at most, then marked failed (apps/core/queue.py);
# a de-identified export is failed and replaced when it is started again (apps/deid/services.py).
# Above the longest a task may wait in the queue behind others.
LIGHTBOX_TASK_NEVER_STARTED_MINUTES = env.int("LIGHTBOX_TASK_NEVER_STARTED_MINUTES", default=15)
# an ingest job running and committing no batch for this long lost its worker and its message:
# it is sent again to be taken over, three sends in all at most, then marked failed
# (apps.imaging.services.ingest_jobs_lost_send). Above the longest one batch may take (one file
# of the largest size written to storage)
LIGHTBOX_INGEST_STALLED_MINUTES = env.int("LIGHTBOX_INGEST_STALLED_MINUTES", default=30)
# server and worker processes keep the memory they free for their next large buffers (glibc
# malloc settings, portal/memory.py)
LIGHTBOX_KEEP_FREED_MEMORY = env.bool("LIGHTBOX_KEEP_FREED_MEMORY", default=True)
#: a viewer session with no frame or activity for this long is closed (viewer.closed, reason timeout)
LIGHTBOX_VIEWER_IDLE_MINUTES = env.int("LIGHTBOX_VIEWER_IDLE_MINUTES", default=30)
#: an open viewer asks this often whether its reader may still view the study's images, and
#: stops (the image hidden, "access has ended") once a revoked share or an ended tumor board says no
LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS = env.int("LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS", default=20)
#: the most the frames an open viewer keeps in the page's memory may take (MiB; frames are
#: no-store, so scrolling back to a frame let go asks for it again), least recently shown let go first
LIGHTBOX_VIEWER_FRAMES_MEMORY_MB = env.float("LIGHTBOX_VIEWER_FRAMES_MEMORY_MB", default=100)
#: the most frames one server process renders at a time (each may take a few times its decoded
#: size, up to LIGHTBOX_MAX_FRAME_BYTES, at its peak: about 1.5 GB for the largest): a frame
#: asked for while all are taken waits up to 2 s, then is answered 503 "busy" with Retry-After,
#: which the viewer asks again after
LIGHTBOX_VIEWER_RENDERS_AT_ONCE = env.int("LIGHTBOX_VIEWER_RENDERS_AT_ONCE", default=4)
#: the most one frame's decoded pixels may take (rows x columns x samples x bytes per sample),
#: checked from the header before any decoding, so that a small file declaring a huge image
#: (65535 x 65535 x 3 x 16 bits: 25 GB) cannot exhaust the web process that renders frames or a
#: worker. The largest real frames: a 4k x 4k x 3 x 16-bit frame 101 MB, a 61-megapixel RGB
#: photograph 181 MB, an 8k x 8k 16-bit radiograph or film scan 134 MB; rendering one needs a
#: few times this (float copies for the rescale and the window)
LIGHTBOX_MAX_FRAME_BYTES = env.int("LIGHTBOX_MAX_FRAME_MB", default=256) * 1_000_000
#: the same for a whole object decoded at once (all its frames): the lossless copy, made by a
#: worker, decodes the original whole and needs about three times this. A tomosynthesis object
#: (70 frames of 2457 x 1996 x 16 bits) is 687 MB, an ultrasound cine of 600 RGB frames 864 MB
LIGHTBOX_MAX_OBJECT_BYTES = env.int("LIGHTBOX_MAX_OBJECT_MB", default=1024) * 1_000_000
LIGHTBOX_ZIP_MAX_ENTRIES = 100_000
LIGHTBOX_ZIP_MAX_RATIO = 100          # uncompressed / compressed, per entry and overall
LIGHTBOX_ZIP_MAX_TOTAL_BYTES = 64 * 1024**3

# --- Identity: field encryption, MFA, sessions, brute force (apps.accounts) ----------------


def _embedded_field_key() -> str:
    """The embedded default keeps one generated Fernet key in var/ (like the secret key)."""
    key_file = VAR_DIR / "field_key"
    if key_file.exists():
        return key_file.read_text().strip()
    import base64

    VAR_DIR.mkdir(parents=True, exist_ok=True)
    value = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    key_file.write_text(value)
    key_file.chmod(0o600)
    return value


# Fernet keys (comma-separated; the first encrypts) for secrets stored in the database
LIGHTBOX_FIELD_ENCRYPTION_KEY = env_secret("LIGHTBOX_FIELD_ENCRYPTION_KEY") or _embedded_field_key()
# an SSO provider's issuer, and every address the sign-in fetches from (discovery, token, userinfo,
# JWKS: apps.accounts.outbound, checked when each request is made), may be on a private or local
# network, or over http there (a provider on 127.0.0.1 in tests and development); elsewhere the
# portal fetches only from public https hosts
LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = env.bool("LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS", default=DEBUG)
# sharing and original downloads need an OTP verification this recent (step-up)
LIGHTBOX_STEP_UP_HOURS = env.int("LIGHTBOX_STEP_UP_HOURS", default=12)
# the idle sign-out of an account with no active membership and no live share (an organization's
# own limits apply otherwise: apps.accounts.middleware.idle_limit_without_membership)
LIGHTBOX_IDLE_MINUTES_DEFAULT = max(1, env.int("LIGHTBOX_IDLE_MINUTES_DEFAULT", default=15))
# the idle sign-out of an operator (is_staff or is_superuser: the Django admin shows every
# organization's rows), or their organizations' stricter one (apps.accounts.middleware)
LIGHTBOX_OPERATOR_IDLE_MINUTES = max(1, env.int("LIGHTBOX_OPERATOR_IDLE_MINUTES", default=15))
# the sign-in gate (second factor, enrolment) and step-up; only test settings turn it off
LIGHTBOX_MFA_ENFORCED = True
LIGHTBOX_OTP_MAX_FAILURES = 5            # wrong codes in a row lock the second factor ...
LIGHTBOX_OTP_LOCK_MINUTES = 15           # ... for this long
LIGHTBOX_INVITE_TOKEN_MAX_FAILURES = 10  # unknown invitation tokens per address ...
LIGHTBOX_INVITE_TOKEN_WINDOW_MINUTES = 15  # ... within this window, then refused for the window
# "Sign in with your organization" (apps.accounts.brute_force.sso_start_claim), within the window:
LIGHTBOX_SSO_START_CLIENT_MAX_TRIES = 100  # tries per client address (a hospital's NAT), then 429
LIGHTBOX_SSO_START_ADDRESS_MAX_EMAILS = 10  # e-mails per typed address, then no more (never a refusal)
LIGHTBOX_SSO_START_WINDOW_MINUTES = 15
OTP_TOTP_ISSUER = "Lightbox"
# django-otp counts failures on the device; apps.accounts.mfa locks after
# LIGHTBOX_OTP_MAX_FAILURES in a row (a fixed lock, rather than django-otp's doubling delays)
OTP_TOTP_THROTTLE_FACTOR = 0
OTP_STATIC_THROTTLE_FACTOR = 0
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows an authenticator key, its QR code or recovery codes
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # linking is decided by the adapter, against memberships
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10
# account events (sign-ins, failed ones, lockouts) of someone whose membership was deactivated this
# many days ago or less are still recorded in that organization's trail (apps.audit.services)
LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS = max(0, env.int("LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS", default=365))
# django-axes: lock an account for AXES_COOLOFF_TIME after AXES_FAILURE_LIMIT wrong passwords
AXES_FAILURE_LIMIT = env.int("LIGHTBOX_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = ["username", ["username", "ip_address"]]  # the account, from anywhere (pair: axes W006)
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "apps.accounts.brute_force.axes_username"
AXES_LOCKOUT_CALLABLE = "apps.accounts.brute_force.axes_lockout_response"
AXES_SENSITIVE_PARAMETERS = ["password", "login"]
AXES_VERBOSE = False
# allauth's own limiter keeps a per-address throttle; the per-account lockout is axes' (one message)
ACCOUNT_RATE_LIMITS = {"login_failed": "20/m/ip"}

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# The cache holds the sign-in throttle (allauth) and the invitation-token lockout: with Redis it
# is one for every web process and survives their restarts; a per-process memory cache would give
# each worker its own count. The embedded default (one process) keeps it in memory. While Redis
# cannot be reached the cache reads as empty (apps/core/cache.py): sign-in goes on, not a 500.
CACHES = {"default": {"BACKEND": "apps.core.cache.ResilientRedisCache", "LOCATION": REDIS_URL,
                      "KEY_PREFIX": "lightbox", "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}}
          if REDIS_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# eager tasks still take a producer (Celery 5.3+): with a host named, kombu does not warn
# "No hostname was supplied" on every task of the embedded default
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = REDIS_URL or None
# Nothing reads a task's result: a send that subscribed to it first (the Redis result store's
# default) waited about 20 s on a Redis that is down before failing (apps/core/queue.py)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 3, "socket_timeout": 5}
#: periodic work, run by `celery -A portal beat` beside the workers (one beat process per deployment);
#: each app adds its own entry here. Where tasks run eagerly (no broker: the embedded default) the
#: server process runs it itself (apps/core/beat.py).
LIGHTBOX_IN_PROCESS_BEAT = env.bool("LIGHTBOX_IN_PROCESS_BEAT", default=CELERY_TASK_ALWAYS_EAGER)
CELERY_BEAT_SCHEDULE = {
    "imaging-uploads-expire": {"task": "apps.imaging.tasks.uploads_expire_task", "schedule": 15 * 60},
    "imaging-blob-orphans-delete": {"task": "apps.imaging.tasks.blobs_orphans_delete_task", "schedule": 24 * 3600},
    "viewer-sessions-close-idle": {"task": "apps.viewer.tasks.viewer_sessions_close_idle_task", "schedule": 5 * 60},
    "sharing-expiries-record": {"task": "apps.sharing.tasks.share_expiries_record_task", "schedule": 5 * 60},
    # the one-time share confirmations' claims, once no session can send their token again
    "sharing-confirmations-prune": {"task": "apps.sharing.tasks.share_confirmations_prune_task", "schedule": 3600},
    # each audit chain's head logged as an anchor line: kept off the host with the logs, it catches
    # a trail rewritten by whoever owns the database (apps/audit/chain.py, verify_audit --anchors)
    "audit-anchors-log": {"task": "apps.audit.tasks.audit_anchors_log_task", "schedule": 3600},
    # ingest jobs and renditions queued and never started: the task was lost (apps/core/queue.py)
    "imaging-ingest-jobs-lost-send": {"task": "apps.imaging.tasks.ingest_jobs_lost_send_task", "schedule": 5 * 60},
    "renditions-lost-send": {"task": "apps.renditions.tasks.study_renditions_lost_send_task", "schedule": 5 * 60},
    # the staged files of failed ingests, LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS after the failure
    "imaging-failed-uploads-discard": {"task": "apps.imaging.tasks.failed_uploads_discard_task", "schedule": 3600},
    # what ended uploads left in the staging folder when deleting it at their end failed
    "imaging-staging-leftovers-delete": {"task": "apps.imaging.tasks.staging_leftovers_delete_task",
                                         "schedule": 3600},
    # a task the broker could not take when its work was committed (apps/core/queue.py)
    "core-unsent-tasks-send": {"task": "apps.core.tasks.unsent_tasks_send_task", "schedule": 60},
}

# --- E-mail: notifications only, never images or patient data --------------------------------
EMAIL_BACKEND = env.str("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("DJANGO_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("DJANGO_EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env_secret("DJANGO_EMAIL_HOST_PASSWORD", default="") or ""
EMAIL_USE_TLS = env.bool("DJANGO_EMAIL_USE_TLS", default=False)
# seconds an SMTP connection may wait on the server (Django waits for ever by default)
EMAIL_TIMEOUT = env.int("DJANGO_EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="Lightbox <no-reply@lightbox.invalid>")

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON parser, plus a 400 for a body nested too deep to decode
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    # JSON only: DRF's browsable HTML pages (its own templates and forms, an undocumented surface next
    # to patient data) only when DJANGO_DEBUG is on, for a developer
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # a 404 says "Not found." in the reader's language, never which model was looked for
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lightbox API",
    "DESCRIPTION": "Sharing medical imaging studies across care teams.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # the schema names every endpoint and field: for signed-in users, as the API itself
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "apps.core.api.schema_error_responses",
                             "apps.imaging.openapi.schema_tus_paths"],  # after: tus refusals are text
}

# --- Demo data ------------------------------------------------------------------------------
# seed_demo creates accounts with printed passwords: allowed on the embedded default only.
LIGHTBOX_DEMO_ALLOWED = env.bool("LIGHTBOX_DEMO_ALLOWED", default="DATABASE_URL" not in env)

# --- Renditions -------------------------------------------------------------------------------
# queue the renditions task (lossless copy, preview, education export) after each ingest
LIGHTBOX_RENDITIONS_AFTER_INGEST = env.bool("LIGHTBOX_RENDITIONS_AFTER_INGEST", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # no query strings (a case search names a patient), no link or invitation tokens and no
    # database values (an error's DETAIL) in logs; Celery workers keep this (portal/celery.py)
    "filters": {"redact": {"()": "apps.core.logs.Redact"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # django-axes logs e-mail addresses at INFO; personal data stays out of logs
    # Django's own handlers on `django` (console under DEBUG, e-mail to ADMINS with the request)
    # and `django.server` (runserver's access log) would see each record before the redacting
    # handler: both loggers keep none and leave their records to the root's handler
    "loggers": {"django": {"handlers": [], "level": "INFO"},
                "django.server": {"handlers": [], "level": "INFO"},
                "axes": {"level": "ERROR"},
                # the hourly anchor lines (apps.audit.chain.anchors_log), the defence against a
                # rewrite of the trail by the database's owner: logged whatever DJANGO_LOG_LEVEL is
                "lightbox.audit.anchors": {"level": "INFO"},
                # pylibjpeg-openjpeg logs every tile it encodes at INFO (renditions)
                "openjpeg": {"level": "WARNING"}},
}
