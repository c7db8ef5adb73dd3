"""Settings, all read from the environment (django-environ).

With no environment at all the site runs as the local demo only when DEBUG=true is set
(the Makefile's `make run` sets it): SQLite, the filesystem Celery broker and generated
secrets in .local/. With DEBUG unset or false every secret must come from the environment,
and a missing one stops start-up with ImproperlyConfigured.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from portal.localsecrets import SECRET_NAMES, ensure_local_secrets, pem_secret

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

LOCAL_DIR = Path(env.str("PORTAL_LOCAL_DIR", default=str(BASE_DIR / ".local")))
# `make run` marks a checkout as the local demo with .local/demo.env (DEBUG=true), so that
# `python manage.py ...` there behaves like the running demo. Real environment variables win;
# a deployment never has this file (delete it to leave demo mode).
if (LOCAL_DIR / "demo.env").is_file():
    environ.Env.read_env(str(LOCAL_DIR / "demo.env"))
DEBUG = env.bool("DEBUG", default=False)

if DEBUG:
    _secrets_file = LOCAL_DIR / "secrets.env"
    ensure_local_secrets(_secrets_file)
    # Values already in the environment win over the file (read_env uses setdefault).
    environ.Env.read_env(str(_secrets_file))

_missing = [name for name in SECRET_NAMES if not env.str(name, default="")]
if _missing:
    raise ImproperlyConfigured(
        "Missing required secret(s): "
        + ", ".join(_missing)
        + ". Set them in the environment (see README.md, 'Running in production'), "
        "or set DEBUG=true for the local demo, which generates them into .local/secrets.env."
    )

SECRET_KEY = env.str("SECRET_KEY")
FIELD_ENCRYPTION_KEYS = env.str("FIELD_ENCRYPTION_KEYS")
LEDGER_SIGNING_KEY = env.str("LEDGER_SIGNING_KEY")

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "guardian",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "portal.ops",
    "portal.tenancy",
    "portal.accounts",
    "portal.records",
    "portal.provider",
    "portal.patient",
    "portal.fhir",
    "portal.api",
    "oauth2_provider",
    "portal.smart",
    "ledger",
    "consent",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # django-csp: the Content-Security-Policy header (CONTENT_SECURITY_POLICY below) on every
    # response, static files included.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Cache-Control: no-store on every response past the static files (portal/ops/middleware.py).
    "portal.ops.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Times shown in the user's own zone (the browser's, from a cookie; portal/accounts).
    "portal.accounts.middleware.TimeZoneMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # django-otp's: request.user.is_verified() (accounts.gates asks it).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "portal.accounts.middleware.SessionTimeoutMiddleware",
    "portal.tenancy.middleware.ActiveHospitalMiddleware",
    # With DEBUG (the demo): the portal's own 404 and 400 pages, not Django's technical ones.
    "portal.errors.DebugErrorPagesMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a lockout flagged during the view into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        # No "loaders": Django then wraps its file and app loaders in the cached loader, so
        # each template is read and compiled once per process (the chart, the most opened
        # page, is rendered from its compiled nodes).
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.tenancy.context_processors.active_hospital",
            ],
        },
    },
]

# --- REST API (/api/v1/, schema at /api/schema/) -------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.BearerTokenAuthentication",
        "portal.api.authentication.PortalSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["portal.api.parsers.PortalJSONParser"],
    "EXCEPTION_HANDLER": "portal.api.base.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "portal.api.schema.PortalAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hospital Portal API",
    "DESCRIPTION": "Staff and patient REST API. Authenticate with `Authorization: Bearer "
    "<token>` (tokens from the portals' API tokens page, or `manage.py issue_token`). "
    'Errors are JSON: {"error": "...", "detail": {...}}.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No "validate at validator.swagger.io" badge: the docs load nothing from outside.
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None},
}

# --- SMART App Launch: django-oauth-toolkit as the authorization server (/oauth/) ----------
OAUTH2_PROVIDER = {
    # Authorization code with PKCE for every client, public or confidential; S256 only
    # (DOT's RFC 9700 gate refuses "plain").
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    # RFC 9700 too: tokens only in the Authorization header, `iss` in the authorization
    # response, and tokens kept hashed at rest.
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": pem_secret(env.str("OIDC_RSA_PRIVATE_KEY")),
    "SCOPES_BACKEND_CLASS": "portal.smart.scopes.SmartScopes",
    "OAUTH2_VALIDATOR_CLASS": "portal.smart.validators.SmartValidator",
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    # Refresh tokens (offline_access / online_access) rotate on every use; an unused one
    # lapses 30 days after its access token.
    "REFRESH_TOKEN_EXPIRE_SECONDS": 30 * 24 * 3600,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # Apps' redirect URIs: https only, except in the demo (http://localhost apps).
    "ALLOWED_REDIRECT_URI_SCHEMES": env.list(
        "SMART_REDIRECT_URI_SCHEMES", default=["http", "https"] if DEBUG else ["https"]
    ),
    "REQUEST_APPROVAL_PROMPT": "force",  # every authorization is asked for on the consent screen
}
# DOT's (unswapped) models, named so that the SMART app's foreign keys to them resolve.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # noqa: S105 - a model name
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"  # noqa: S105 - a model name
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"  # noqa: S105 - a model name
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER_DEVICE_GRANT_MODEL = "oauth2_provider.DeviceGrant"

# --- Database ------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{LOCAL_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one file: WAL lets readers run beside the
    # single writer, and IMMEDIATE transactions take the write lock up front instead of
    # failing with "database is locked" when a read transaction later tries to write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
else:
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    # Django's psycopg connection pool, one per process: DB_POOL=true (the default), a
    # number (the pool's largest size), or false for Django's persistent connections
    # (CONN_MAX_AGE) instead. Django requires CONN_MAX_AGE=0 with the pool: a request takes
    # a connection from the pool and gives it back at its end. With CONN_HEALTH_CHECKS the
    # pool checks a connection before handing it out, so a session the database dropped
    # (a failover, pg_terminate_backend) is replaced, not served as an error.
    _db_pool = env.str("DB_POOL", default="true").strip().lower()
    if _db_pool in ("", "0", "false", "no", "off"):
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        _options["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
            "max_size": int(_db_pool)
            if _db_pool.isdigit()
            else env.int("DB_POOL_MAX_SIZE", default=4),
            # Seconds a request waits for a free connection before it fails.
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        }
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Django binds parameters on the client by default. DB_SERVER_SIDE_BINDING=true sends
    # them separately (Django's OPTIONS["server_side_binding"]); then psycopg prepares a
    # statement on a connection once it has run DB_PREPARE_THRESHOLD times there. The
    # threshold is empty (never prepare: Django's default) unless set; keep it empty, or
    # binding off, behind PgBouncer in transaction mode before 1.21 (docs/deployment.md).
    if env.bool("DB_SERVER_SIDE_BINDING", default=False):
        _options["server_side_binding"] = True
    _prepare_threshold = env.str("DB_PREPARE_THRESHOLD", default="")
    _options["prepare_threshold"] = int(_prepare_threshold) if _prepare_threshold else None
    # Named cursors (QuerySet.iterator()) live in one session's transaction: off behind a
    # transaction-mode pooler.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DB_DISABLE_SERVER_SIDE_CURSORS", default=False
    )
    # Names the process kind in pg_stat_activity (web, worker, ...): for operators, and for
    # the fault tests, which terminate the worker's sessions and nobody else's.
    _options["application_name"] = env.str("DB_APPLICATION_NAME", default="hospital-portal")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts and sessions -----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses locked-out (username, IP) pairs before any password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Object permissions (has_perm(perm, obj)) as the access module decides them;
    # guardian's own backend ignores the grants' time windows and sources (see the module).
    "portal.records.backends.ChartPermissionBackend",
]
# guardian warns when its own backend is not configured: it is left out on purpose (above).
SILENCED_SYSTEM_CHECKS = ["guardian.W001"]
# guardian's anonymous user row is not used: anonymous visitors never hold object permissions.
ANONYMOUS_USER_NAME = None
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"

AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False  # axes would otherwise log usernames on every attempt
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0)

OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Hospital Portal")

# Idle log-off: staff after 15 minutes, patients after 30; everyone after 12 hours.
SESSION_IDLE_TIMEOUT_STAFF = timedelta(minutes=15)
SESSION_IDLE_TIMEOUT_PATIENT = timedelta(minutes=30)
SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=12)
# Django's database sessions: one primary-key read per signed-in request. Not cached_db: with
# the cache in Redis, a Redis outage would make every signed-in request a 500 (its load
# writes the cache back unguarded) and a log-out whose cache delete failed could leave the
# session alive in the cache; the portal otherwise keeps working while Redis is down.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = int(SESSION_ABSOLUTE_TIMEOUT.total_seconds())
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_HTTPONLY = True
# A refused form (no or a stale CSRF token) gets a page that says what to do.
CSRF_FAILURE_VIEW = "portal.errors.csrf_failure"

# --- HTTP security -------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts, styles, images, fonts and requests only from
# this site; no inline script or style, no style="..." attribute. A page that must run a
# script or style of its own gives it request.csp_nonce (the nonce then joins the header of
# that response only); a view that needs more says so with csp.decorators.csp_update.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Static files (vendored, served by whitenoise; no CDN) --------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DOCUMENT_MAX_BYTES = env.int("DOCUMENT_MAX_BYTES", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(LOCAL_DIR / "media")))

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: an embedded broker for the zero-setup demo, shared by
    # the web server, the worker and beat through one folder.
    _broker_dir = LOCAL_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only once it has run; if the worker dies, the message returns.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(LOCAL_DIR / "celerybeat-schedule")
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2}
# Witness publication (ledger.publish, ledger.cosign) has a queue of its own: a worker whose
# processes are all busy anchoring (a lingering task holds its prefetch window) would hold it
# back for as long. A worker started without -Q consumes both queues; `make run` on PostgreSQL
# adds one for `-Q ledger.witness` only (README, "Witnesses").
CELERY_TASK_QUEUES = (Queue("celery"), Queue("ledger.witness"))
CELERY_TASK_ROUTES = {
    "ledger.publish": {"queue": "ledger.witness"},
    "ledger.cosign": {"queue": "ledger.witness"},
}
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "heartbeat": {"task": "portal.tasks.heartbeat", "schedule": 30.0},
    "ledger-sweep": {
        "task": "ledger.sweep",
        "schedule": env.float("LEDGER_SWEEP_SECONDS", default=5.0),
    },
    # Witnesses behind the latest checkpoint (after a failure, at the back-off's time).
    "ledger-publish": {
        "task": "ledger.publish",
        "schedule": env.float("LEDGER_PUBLISH_SWEEP_SECONDS", default=10.0),
    },
    # Bookkeeping only: an ended consent or proxy grant already grants nothing.
    "consent-expire": {"task": "consent.expire_due", "schedule": 60.0},
    # Break-glass e-mail notices the mail server has not accepted yet.
    "consent-notices": {"task": "consent.notices_sweep", "schedule": 60.0},
}

# --- E-mail (break-glass notices). EMAIL_URL, e.g. smtp+tls://user:pass@host:587; the demo
# writes mails to the worker's console.
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = (
        "django.core.mail.backends.console.EmailBackend"
        if DEBUG
        else "django.core.mail.backends.smtp.EmailBackend"
    )
if env.str("EMAIL_FILE_PATH", default=""):  # filemail:// (django-environ drops the leading /)
    EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@localhost")

# --- Cache (the ledger's enqueue debounce; shared through Redis when Redis is the broker) --
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("CACHE_URL", default=CELERY_BROKER_URL),
            "KEY_PREFIX": "portal",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Ledger --------------------------------------------------------------------------------
# The log's name in its checkpoints (defaults to the signing key's name).
LEDGER_ORIGIN = env.str("LEDGER_ORIGIN", default="")
# Witnesses (c2sp.org/tlog-witness) that cosign the log's checkpoints; none = the log is
# published without witnesses. Either a tlog-policy file (its `witness NAME VKEY URL` lines
# and quorum), or LEDGER_WITNESSES="name=url=vkey,..." with LEDGER_WITNESS_QUORUM (a number,
# "all" or "any"; default all). README.md, "Witnesses".
LEDGER_WITNESS_POLICY = env.str("LEDGER_WITNESS_POLICY", default="")
LEDGER_WITNESSES = env.str("LEDGER_WITNESSES", default="")
LEDGER_WITNESS_QUORUM = env.str("LEDGER_WITNESS_QUORUM", default="")
LEDGER_WITNESS_TIMEOUT = env.float("LEDGER_WITNESS_TIMEOUT", default=5.0)  # each request
# Bounds on an anchoring transaction (PostgreSQL; see docs/deployment.md): a worker that hangs
# holding the log head's lock (stopped, frozen, partitioned) is ended by the server after
# LEDGER_ANCHOR_IDLE_TIMEOUT seconds idle in its transaction, which then rolls back; a worker
# waiting for the lock gives up after LEDGER_ANCHOR_LOCK_TIMEOUT seconds and tries again.
LEDGER_ANCHOR_LOCK_TIMEOUT = env.float("LEDGER_ANCHOR_LOCK_TIMEOUT", default=2.0)
LEDGER_ANCHOR_IDLE_TIMEOUT = env.float("LEDGER_ANCHOR_IDLE_TIMEOUT", default=5.0)
# The anchor task's Celery time limits (seconds): the soft one ends a run cleanly (the batch
# in progress rolls back, the rest is handed to a new task); the hard one kills a pool process
# that hangs, and its message returns to the queue (acks_late).
LEDGER_ANCHOR_SOFT_TIME_LIMIT = env.float("LEDGER_ANCHOR_SOFT_TIME_LIMIT", default=60.0)
LEDGER_ANCHOR_TIME_LIMIT = env.float("LEDGER_ANCHOR_TIME_LIMIT", default=90.0)

# --- Logging: no PHI; ids only ------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

PORTAL_NAME = env.str("PORTAL_NAME", default="Hospital Portal")
