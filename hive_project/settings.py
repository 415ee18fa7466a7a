"""Django settings, derived from the validated hive configuration.

Everything an operator may change comes from `config/hive.yaml` and `LEANVIBE_*` variables through
`hive_project.config.load_config`; this module only translates that into Django, Celery and
Channels terms. A bad value stops the process here with one line (key, value, what was expected).
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote, urlsplit

from hive_project.config.errors import ConfigError
from hive_project.config.snapshot import load_in_child
from hive_project.launch import is_web_process, is_worker_process, is_wsgi_process
from hive_project.logs import logging_settings
from hive_project.paths import BASE_DIR, embedded_redis_socket, var_dir, write_private

if TYPE_CHECKING:
    from hive_project.config.schema import HiveConfig


def _config_error(err: ConfigError) -> SystemExit:
    """One line, no traceback: the operator fixes the file or variable."""
    sys.stderr.write(f"hive: configuration error: {err}\n")
    return SystemExit(2)


def _load_config() -> HiveConfig:
    """A worker reads its configuration through a child process and never loads pydantic
    (memory: hive_project/config/snapshot.py); every other process validates in place."""
    if is_worker_process():
        return cast("HiveConfig", load_in_child())
    from hive_project.config.loader import load_config

    return load_config()


try:
    HIVE_CONFIG = _load_config()
except ConfigError as err:
    raise _config_error(err) from None

ENVIRONMENT = HIVE_CONFIG.environment  # LEANVIBE_ENV, validated: development, production or test
PRODUCTION = HIVE_CONFIG.production
VAR_DIR = var_dir()
WEB_PROCESS = is_web_process()  # ASGI: database connections from a pool
WSGI_PROCESS = is_wsgi_process()  # gunicorn threads: persistent connections, on SQLite too
WORKER_PROCESS = is_worker_process()


def _development_secret_key() -> str:
    """A random key kept in var/ so sessions survive restarts on a developer machine."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = HIVE_CONFIG.security.secret_key or ""
if not SECRET_KEY:
    if PRODUCTION:
        sys.stderr.write(
            "hive: configuration error: security.secret_key is empty: expected a secret "
            "(set LEANVIBE_SECURITY_SECRET_KEY or LEANVIBE_SECURITY_SECRET_KEY_FILE)\n"
        )
        raise SystemExit(2)
    SECRET_KEY = _development_secret_key()

DEBUG = HIVE_CONFIG.system.debug_mode and not PRODUCTION
ALLOWED_HOSTS = [h for h in os.environ.get("LEANVIBE_ALLOWED_HOSTS", "").split(",") if h] or (
    ["*"] if not PRODUCTION else ["localhost", "127.0.0.1"]
)

# The apps a process that serves HTTP needs on top of the ones whose models every process uses.
HTTP_APPS = [
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]
# A Celery worker serves no HTTP: it loads only the apps whose models it reads and writes (auth for
# memberships, contenttypes under auth). Without the admin, sessions, DRF and the API schema, each
# worker process (and every pool child forked from it) holds fewer modules. A worker never deletes
# a user or a content type, the only rows the left-out apps' tables point to, so no cascade is
# missed; migrations, checks and the web roles still load every app.
INSTALLED_APPS = [
    *([] if WORKER_PROCESS else HTTP_APPS[:1]),
    "django.contrib.auth",
    "django.contrib.contenttypes",
    *([] if WORKER_PROCESS else HTTP_APPS[1:]),
    "hive_project",
    "agents",
    "coordination",
    "external_api",
    "ml",
    "workers",
]

MIDDLEWARE = [
    "hive_project.probes.ProbesMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "external_api.middleware.JsonErrorsMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "external_api.auth_throttle.AuthThrottleMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hive_project.urls"
ASGI_APPLICATION = "hive_project.asgi.application"
WSGI_APPLICATION = "hive_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


# --- database: SQLite file by default, PostgreSQL when LEANVIBE_DATABASE_URL says so ------------
def database_settings(url: str | None) -> dict:
    if not url:
        return _sqlite(VAR_DIR / "hive.sqlite3")
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return _sqlite(Path(unquote(parts.path)))
    if parts.scheme in {"postgres", "postgresql", "postgresql+psycopg"}:
        database = HIVE_CONFIG.database
        options: dict = {"connect_timeout": 5}
        if WEB_PROCESS:
            # Under ASGI each request's sync part may run in a thread of its own, and Django's
            # persistent connections are per thread: they would pile up. The web process draws
            # from a psycopg pool instead (Django's pool excludes CONN_MAX_AGE). Workers keep one
            # persistent connection per process: a pool there would be forked with its threads.
            options["pool"] = {
                "min_size": database.connection_pool_size,
                "max_size": database.connection_pool_size + database.max_overflow,
                "timeout": database.pool_timeout,
                "max_lifetime": float(database.pool_recycle),
            }
        return {
            "ENGINE": "hive_project.postgresql",  # Django's, its health check skipped when just proven
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 0 if WEB_PROCESS else database.conn_max_age,
            # with the pool: it checks a connection before handing it out (a restarted server)
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    sys.stderr.write(f"hive: configuration error: database.url = {url!r}: expected postgresql://… or sqlite:///…\n")
    raise SystemExit(2)


def _sqlite(path: Path) -> dict:
    # WAL lets readers run beside the one writer; IMMEDIATE transactions take the write lock at
    # BEGIN so two workers never deadlock upgrading a read lock; the timeout (database.pool_timeout,
    # as on PostgreSQL the seconds to wait for a connection) makes them queue.
    # A gunicorn thread keeps its connection: opening one runs the PRAGMAs, and closing the
    # last one checkpoints the WAL, both per request otherwise.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "CONN_MAX_AGE": HIVE_CONFIG.database.conn_max_age if WSGI_PROCESS else 0,
        "OPTIONS": {
            "timeout": HIVE_CONFIG.database.pool_timeout,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": str(path.with_name(f"test-{path.stem}.sqlite3"))},
    }


DATABASES = {"default": database_settings(HIVE_CONFIG.database.url)}
DATABASE_ECHO = HIVE_CONFIG.database.echo  # hive_project.apps logs every statement
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Redis: broker, event stream, cache. The embedded server listens on a socket in var/ -------
def redis_url() -> str:
    return HIVE_CONFIG.redis.url or f"unix://{embedded_redis_socket()}"


REDIS_URL = redis_url()
EMBEDDED_REDIS = not HIVE_CONFIG.redis.url


def celery_broker_url(url: str) -> str:
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://")
    return url


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "hive",
    }
}

# --- Celery -------------------------------------------------------------------------------------
LONGEST_TASK_TIMEOUT = max([pool.runner.timeout for pool in HIVE_CONFIG.agents.values()] + [3600.0])
# Broker priorities on Redis: 0 is served first. A task's priority maps onto these steps.
BROKER_PRIORITY_STEPS = [0, 3, 6, 9]

CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message not acked within this time is handed out again: it must outlast the longest task
    # (plus its hard limit), or a slow task would run twice. Claims make a redelivery harmless.
    "visibility_timeout": int(LONGEST_TASK_TIMEOUT + 600),
    "priority_steps": BROKER_PRIORITY_STEPS,
    "sep": ":",
    "queue_order_strategy": "priority",
    "socket_connect_timeout": 3,
    "socket_timeout": 30,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "hive.control"
CELERY_TASK_DEFAULT_PRIORITY = 6
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# No `task-sent` event per publish (a broker round trip and ~10% of task_submit's CPU): the task's
# row and its task.queued event say it was sent; Flower lists a task from the worker's task-received.
CELERY_TASK_SEND_SENT_EVENT = False
# Task events cost every task a broker round trip; Flower switches them on while it watches.
CELERY_WORKER_SEND_TASK_EVENTS = False
# Celery's Django fix-up closes the database connection around every task unless told to reuse it.
CELERY_DB_REUSE_MAX = 100
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

RECONCILE_INTERVAL = max(1.0, min(5.0, HIVE_CONFIG.multi_agent.health_check_interval / 2))
# scaling.interval_seconds; a message older than one interval is dropped, the next one decides
SCALE_INTERVAL = HIVE_CONFIG.scaling.interval_seconds
# How often beat asks whether a model is due (cheap when none is): 6 health intervals, at most a minute.
ML_RETRAIN_INTERVAL = max(5.0, min(60.0, HIVE_CONFIG.multi_agent.health_check_interval * 6))
# external_api.performance_monitoring.monitoring_interval; as for scaling, a late message is dropped
MONITOR_INTERVAL = HIVE_CONFIG.external_api.performance_monitoring.monitoring_interval
CELERY_BEAT_SCHEDULE = {
    "reconcile": {
        "task": "hive.reconcile",
        "schedule": RECONCILE_INTERVAL,
        "options": {"queue": "hive.control", "expires": RECONCILE_INTERVAL * 2},
    },
    "scale": {
        "task": "hive.scale",
        "schedule": SCALE_INTERVAL,
        "options": {"queue": "hive.control", "expires": SCALE_INTERVAL},
    },
    # Coordination sessions move on when a step's task ends; this catches what that missed
    # (a worker killed between commit and hook) and times sessions out.
    "session-reconcile": {
        "task": "hive.session_reconcile",
        "schedule": RECONCILE_INTERVAL,
        "options": {"queue": "hive.control", "expires": RECONCILE_INTERVAL * 2},
    },
    # Pool samples for the dashboard's charts and the alerts (coordination.monitoring).
    "monitor": {
        "task": "hive.monitor",
        "schedule": MONITOR_INTERVAL,
        "options": {"queue": "hive.control", "expires": MONITOR_INTERVAL},
    },
    "event-retention": {
        "task": "hive.event_retention",
        "schedule": 3600.0,
        "options": {"queue": "hive.control", "expires": 1800},
    },
    # Asks whether a model is due (update frequency passed, or drift); trains only then.
    "ml-retrain": {
        "task": "hive.ml_retrain",
        "schedule": ML_RETRAIN_INTERVAL,
        "options": {"queue": "hive.control", "expires": ML_RETRAIN_INTERVAL * 0.9},
    },
}

# --- the rest ---------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- the front doors: DRF gateway, JWT, API keys, CORS, rate limits -------------------------------
GATEWAY = HIVE_CONFIG.external_api.api_gateway
SERVE_ROLE = os.environ.get("LEANVIBE_SERVE_ROLE", "all")


def _jwt_signing_key() -> str:
    """Separate from SECRET_KEY, so rotating one never invalidates the other; the same property
    (`effective_jwt_signing_key`) tells `hive check-config` whether one is set."""
    key = HIVE_CONFIG.security.effective_jwt_signing_key
    if key:
        return key
    if PRODUCTION:
        sys.stderr.write(
            "hive: configuration error: security.jwt_signing_key is empty: expected a secret "
            "(set LEANVIBE_SECURITY_JWT_SIGNING_KEY or LEANVIBE_SECURITY_JWT_SIGNING_KEY_FILE)\n"
        )
        raise SystemExit(2)
    path = VAR_DIR / "jwt_signing_key"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "external_api.authentication.ApiKeyAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["external_api.permissions.ScopedAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["external_api.throttling.RouteRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["external_api.api.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "external_api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
JWT = HIVE_CONFIG.security.api_gateway.authentication.jwt
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=JWT.expiration),
    # a refresh token outlives the access token it renews
    "REFRESH_TOKEN_LIFETIME": max(timedelta(days=1), timedelta(seconds=JWT.expiration)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "SIGNING_KEY": _jwt_signing_key(),
    "ALGORITHM": JWT.algorithm,
    "ISSUER": JWT.issuer,
    "UPDATE_LAST_LOGIN": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Hive API",
    "DESCRIPTION": "Submit, follow and manage tasks run by pools of coding agents.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from the wheel: no CDN needed
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "coordination.models.Task.Status",
        "AgentStatusEnum": "agents.models.Agent.Status",
        "AttemptOutcomeEnum": "coordination.models.TaskAttempt.Outcome",
        "SessionStatusEnum": "coordination.models.CoordinationSession.Status",
        "SessionModeEnum": "coordination.models.CoordinationSession.Mode",
        "SessionStepStatusEnum": "coordination.models.SessionStep.Status",
        "ModelKindEnum": "ml.services.KINDS",
        "RecommendationKindEnum": "ml.selectors.RECOMMENDATION_KINDS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "external_api.schema.strict_request_bodies",
    ],
}
CORS_ALLOWED_ORIGINS = [o for o in GATEWAY.cors_origins if o != "*"] if GATEWAY.cors_enabled else []
CORS_ALLOW_ALL_ORIGINS = GATEWAY.cors_enabled and "*" in GATEWAY.cors_origins
CORS_ALLOW_METHODS = [m for m in GATEWAY.cors_methods] + ["OPTIONS"]
CORS_ALLOW_HEADERS = list({*GATEWAY.cors_headers, "content-type", "authorization", "x-api-key", "idempotency-key"})
CORS = HIVE_CONFIG.security.api_gateway.cors
# Never credentials for every origin: django-cors-headers would echo any site's origin with them.
CORS_ALLOW_CREDENTIALS = CORS.credentials and not CORS_ALLOW_ALL_ORIGINS
CORS_PREFLIGHT_MAX_AGE = CORS.max_age
CORS_EXPOSE_HEADERS = list(CORS.exposed_headers)
CORS_URLS_REGEX = r"^/api/.*$"
DATA_UPLOAD_MAX_MEMORY_SIZE = min(
    GATEWAY.max_request_bytes, HIVE_CONFIG.security.api_gateway.request_validation.max_payload_bytes
)
WEBHOOK_MAX_BYTES = HIVE_CONFIG.external_api.webhook_server.max_payload_bytes
# How long a web process keeps a webhook source it has read (external_api.webhooks.intake.source_for):
# a source changed by another process (secret revoked, source disabled, rules edited) acts within
# this bound; a delivery signed with a newly set secret is accepted at once. 0: read every time.
WEBHOOK_SOURCE_CACHE_SECONDS = 5.0

try:
    LOGGING = logging_settings(HIVE_CONFIG, var_dir=VAR_DIR)
except ConfigError as err:
    raise _config_error(err) from None
if WORKER_PROCESS:  # memory: Django's reporter is imported on the first report, not at start
    DEFAULT_EXCEPTION_REPORTER = "hive_project.logs.LazyExceptionReporter"
