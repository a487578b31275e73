"""Switchboard's one settings module: embedded with no variables set, real services from the environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from contactcenter.siteurl import DEFAULT_PORT, site_url

BASE_DIR = Path(__file__).resolve().parent.parent

INSECURE_DEFAULT_SECRET_KEY = "django-insecure-switchboard-embedded-mode-only"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0/true/false/yes/no/on/off, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {raw!r}") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY") or INSECURE_DEFAULT_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Where the Twilio client sends its API calls: empty is Twilio itself. Only a loopback fake Twilio (tests,
# `make bench`) sets it; tenants never can.
TWILIO_API_BASE_URL = env_str("TWILIO_API_BASE_URL")
# The sandbox outbox page (/sandbox/) and its webhook: where messages "sent" by sandbox channels are read and
# answered as the customer would. Never on in production unless asked for.
SANDBOX_OUTBOX = env_bool("SANDBOX_OUTBOX", DEBUG)
# The relay's first wait before retrying a provider's timeout or 5xx; each next wait doubles (at most 5 min).
RELAY_BACKOFF_SECONDS = env_float("RELAY_BACKOFF_SECONDS", 2.0)
# Fernet keys that seal provider credentials at rest, newest first (contactcenter/secretbox.py says how to
# rotate them). Unset: one key derived from SECRET_KEY (`check --deploy` warns).
SECRETS_KEYS = env_list("SECRETS_KEYS")
# Public base URL used in links sent by email (invites, password resets) and in the widget snippet. Unset, it
# is the address daphne listens on: `make run` exports HOST and PORT to every command it runs.
SITE_URL = site_url(
    {"SITE_URL": env_str("SITE_URL"), "HOST": env_str("HOST"), "PORT": str(env_int("PORT", DEFAULT_PORT))}
)

if not DEBUG:
    if SECRET_KEY == INSECURE_DEFAULT_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "DEBUG is off: set SECRET_KEY to a long random value (at least 32 characters), "
            "for example the output of `python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "DEBUG is off: set ALLOWED_HOSTS to the comma-separated host names this server answers to."
        )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "channels",
    "contactcenter",
    "agents",
    "chat",
    "queueing",
    "channels_switch",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The default Content-Security-Policy for every response whose view set none (contactcenter/security.py).
    "contactcenter.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF: reads JSON endpoints' bodies within Django's limits and shapes every error they answer.
    "contactcenter.middleware.JsonErrorMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "contactcenter.urls"
ASGI_APPLICATION = "contactcenter.asgi.application"

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
                "contactcenter.context_processors.membership",
            ],
        },
    },
]

# --- Database: SQLite file unless DATABASE_URL points at PostgreSQL -------------------------------
DB_CONN_MAX_AGE = env_int("DB_CONN_MAX_AGE", 60)
# Off by default: Channels runs close_old_connections() around every database_sync_to_async call, so a
# health check would add a `SELECT 1` round trip to every websocket frame that touches the database. A
# connection that did break is still discarded by Django after the error it causes (the next call reconnects).
DB_CONN_HEALTH_CHECKS = env_bool("DB_CONN_HEALTH_CHECKS", False)
if env_str("DATABASE_URL"):
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL"), conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=DB_CONN_HEALTH_CHECKS
        )
    }
    # Parameters travel apart from the SQL (server-side binding) and psycopg prepares a statement once it
    # has run 5 times on a connection, so PostgreSQL stops parsing and planning the ORM's repeated reads
    # (a socket's hello plans joins over six tables). The statement that stores each chat message asks
    # for preparation at once (chat.services.message_sql). A pooler in front must then run in session mode.
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
else:
    SQLITE_PATH = Path(env_str("SQLITE_PATH") or BASE_DIR / "var" / "db.sqlite3")
    # A fresh clone has no var/: SQLite creates the file, not its folder.
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            "OPTIONS": {"timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Threads (per server process, each with its own connection) that store websocket messages, so the
# database round trips of different sockets overlap; every other database call of a socket runs on
# Channels' one shared thread. 0: messages use that thread too (the default on SQLite, one writer at a time).
# More is not faster: the threads share the GIL with the event loop (figures in bench/README.md).
MESSAGE_POST_THREADS = env_int("MESSAGE_POST_THREADS", 2 if env_str("DATABASE_URL") else 0)

# --- Redis: channel layer, cache and Celery broker --------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
# "pubsub" (RedisPubSubChannelLayer) or "core" (RedisChannelLayer); docs/architecture.md says why pubsub.
CHANNEL_LAYER_BACKEND = env_str("CHANNEL_LAYER_BACKEND", "pubsub")

if REDIS_URL:
    # The three silent failures of the defaults (shared/CHANNEL-LAYER.md): idle sockets die after 5 s,
    # more than 100 concurrent operations fail, and more than 100 queued messages are dropped.
    _redis_host: dict[str, Any] = {"address": REDIS_URL, "max_connections": 2000, "socket_timeout": 30}
    if CHANNEL_LAYER_BACKEND == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [_redis_host], "capacity": 10000, "expiry": 60},
            }
        }
    elif CHANNEL_LAYER_BACKEND == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                # channels_redis's PubSub layer plus group_send_many (one Redis round trip for many events).
                "BACKEND": "contactcenter.channel_layer.PubSubChannelLayer",
                "CONFIG": {"hosts": [_redis_host]},
            }
        }
    else:
        raise ImproperlyConfigured("CHANNEL_LAYER_BACKEND must be 'pubsub' or 'core'")
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "sb",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery: eager (in-process) only when no broker is configured ------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not (env_str("CELERY_BROKER_URL") or REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "switchboard"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "sweep": {"task": "contactcenter.tasks.sweep", "schedule": float(env_int("SWEEP_SECONDS", 5))},
}

# --- Email: console backend by default, any Anymail ESP in production --------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Switchboard <no-reply@switchboard.localhost>")
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value for key, value in os.environ.items() if key.startswith("ANYMAIL_") and value
}

# --- Auth -----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600

# --- Static and media -----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "var" / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or BASE_DIR / "var" / "media")
MEDIA_URL = "/media/"  # never served directly: attachments go through a permission-checked view
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Security headers -----------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "contactcenter.middleware.csrf_failure"  # JSON under the API prefixes, Django's page elsewhere
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# Plain-HTTP requests are redirected to HTTPS (default: on behind a TLS proxy). /healthz stays plain: the
# load balancer's and compose's health checks call it directly.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# HTTP Strict Transport Security: browsers refuse plain HTTP to this host for that many seconds (0: off).
# Once sent it cannot be taken back before it expires: turn it on when HTTPS is there to stay.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# How many reverse proxies of ours append to X-Forwarded-For in front of daphne. 0: the client address is
# REMOTE_ADDR. N: it is the Nth X-Forwarded-For entry from the right (the one our outermost proxy wrote;
# entries left of it are whatever the client sent). See contactcenter.ratelimit.client_ip.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more")

# --- REST API -------------------------------------------------------------------------------------
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "600/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "contactcenter.api_defaults.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["contactcenter.api_defaults.IsTenantMember"],
    "DEFAULT_THROTTLE_CLASSES": ["contactcenter.api_defaults.PrincipalRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "contactcenter.api_defaults.DefaultPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "contactcenter.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "contactcenter.api_defaults.StorableJSONParser",
        "contactcenter.api_defaults.StorableFormParser",
        "contactcenter.api_defaults.StorableMultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": (
        "Per-tenant REST API. Authenticate with `Authorization: Bearer <API key>`; a key acts with the "
        "admin role inside its tenant. Every failure answers "
        '`{"error": {"code": ..., "message": ..., "fields": {...}}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from this server (no CDN): the docs work on a closed network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
}

# --- Product limits -------------------------------------------------------------------------------
MESSAGE_MAX_CHARS = env_int("MESSAGE_MAX_CHARS", 4000)
# Seconds after the last console socket closes before an agent counts as offline.
PRESENCE_GRACE_SECONDS = env_int("PRESENCE_GRACE_SECONDS", 30)
# A console socket not heard from (no ping) for this long is counted as gone, e.g. after a server crash.
AGENT_SOCKET_STALE_SECONDS = env_int("AGENT_SOCKET_STALE_SECONDS", 90)
# A visitor waiting in a queue whose widget has been gone (no open socket) this long has left it: their chat
# closes as abandoned. Long enough for a reload or a page change on the customer's site.
QUEUE_LEAVE_GRACE_SECONDS = env_int("QUEUE_LEAVE_GRACE_SECONDS", 60)
# A queue's line is read and its places announced at most once per this many seconds per server process, however
# many visitors it answered meanwhile (queueing/services/line.py).
QUEUE_LINE_ANNOUNCE_SECONDS = env_float("QUEUE_LINE_ANNOUNCE_SECONDS", 0.25)
# A chat an agent rejected or let expire goes back to them after this long, but only when no one else of its
# queue can take it (else it would wait for nobody).
ROUTING_REOFFER_SECONDS = env_int("ROUTING_REOFFER_SECONDS", 60)
# Per conversation and side (its visitor; its agents): at most MESSAGE_RATE_COUNT messages in
# MESSAGE_RATE_WINDOW_SECONDS, counted in the conversation row by the statement that stores each message.
MESSAGE_RATE_COUNT = env_int("MESSAGE_RATE_COUNT", 30)
MESSAGE_RATE_WINDOW_SECONDS = env_int("MESSAGE_RATE_WINDOW_SECONDS", 10)
# Chats a widget may start (POST /widget/api/<key>/sessions), counted in the cache: per client address and
# widget, and per widget from everywhere. "N/s", "N/min", "N/hour" or "N/day"; empty turns one off.
WIDGET_SESSION_RATE = env_str("WIDGET_SESSION_RATE", "10/min")
WIDGET_SESSION_RATE_WIDGET = env_str("WIDGET_SESSION_RATE_WIDGET", "120/min")
# Auth code redemptions (POST /widget/api/<key>/auth-code) per client address, right or wrong: a code is 32
# random characters, so this only keeps a script from hammering the endpoint. Empty turns it off.
AUTH_CODE_REDEEM_RATE = env_str("AUTH_CODE_REDEEM_RATE", "10/min")
# Wrong identity signatures (POST /widget/api/<key>/identify) per client address; right ones never count, as a
# signed-in user signs in again on every page. Empty turns it off.
IDENTITY_FAILURE_RATE = env_str("IDENTITY_FAILURE_RATE", "20/min")
# How long a link request's links (continue on WhatsApp, SMS or email with a code) can be used, in minutes.
LINK_REQUEST_MINUTES = env_int("LINK_REQUEST_MINUTES", 60 * 24)
# Failed sign-ins (wrong password) allowed per account and client address, per address over all accounts,
# and per account over all addresses ("N/15min" style; empty turns one off). Past one, sign-in is refused
# until its window ends (contactcenter/ratelimit.py says why three).
SIGNIN_FAILURE_RATE = env_str("SIGNIN_FAILURE_RATE", "5/15min")
SIGNIN_FAILURE_RATE_ADDRESS = env_str("SIGNIN_FAILURE_RATE_ADDRESS", "30/15min")
SIGNIN_FAILURE_RATE_ACCOUNT = env_str("SIGNIN_FAILURE_RATE_ACCOUNT", "100/hour")
# Days an address this account signed in from stays exempt from the per-account limit.
SIGNIN_KNOWN_ADDRESS_DAYS = env_int("SIGNIN_KNOWN_ADDRESS_DAYS", 30)
# How long a visitor's signed token (kept in the widget's storage) resumes their conversation.
VISITOR_TOKEN_MAX_AGE = env_int("VISITOR_TOKEN_MAX_AGE", 30 * 24 * 3600)
# How long a visitor's signed attachment link works.
ATTACHMENT_URL_MAX_AGE = env_int("ATTACHMENT_URL_MAX_AGE", 24 * 3600)
# Run the periodic sweep inside the server process (embedded mode has no Celery beat).
SWEEP_IN_PROCESS = env_bool("SWEEP_IN_PROCESS", CELERY_TASK_ALWAYS_EAGER)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": sys.stderr}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        # At INFO it logs every request to Twilio with its recipients' numbers.
        "twilio.http_client": {"level": "WARNING"},
    },
}

# --- Outbound webhooks (docs/webhooks.md) --------------------------------------------------------------
# Whether a webhook may go to a private, loopback, link-local or otherwise internal address (and over plain
# http). Off in production (SSRF: a tenant could make the server call its own network); on with DEBUG (the
# embedded demo, tests' loopback receivers) unless set.
WEBHOOKS_ALLOW_PRIVATE = env_bool("WEBHOOKS_ALLOW_PRIVATE", DEBUG)
WEBHOOKS_TIMEOUT_SECONDS = env_float("WEBHOOKS_TIMEOUT_SECONDS", 10.0)
# The first wait before retrying a 5xx, timeout, lost connection, 408 or 429; each next wait doubles (at most
# WEBHOOKS_BACKOFF_MAX_SECONDS), with jitter; after WEBHOOKS_MAX_ATTEMPTS the delivery is given up.
WEBHOOKS_BACKOFF_SECONDS = env_float("WEBHOOKS_BACKOFF_SECONDS", 5.0)
WEBHOOKS_BACKOFF_MAX_SECONDS = env_float("WEBHOOKS_BACKOFF_MAX_SECONDS", 2 * 3600.0)
WEBHOOKS_MAX_ATTEMPTS = env_int("WEBHOOKS_MAX_ATTEMPTS", 12)
# A subscription whose attempts have all failed for this long is disabled and its tenant's admins emailed.
WEBHOOKS_DISABLE_AFTER_SECONDS = env_int("WEBHOOKS_DISABLE_AFTER_SECONDS", 24 * 3600)
# How long the old secret keeps signing beside the new one after a rotation.
WEBHOOKS_ROTATION_GRACE_SECONDS = env_int("WEBHOOKS_ROTATION_GRACE_SECONDS", 24 * 3600)

# Idempotency-Key on API POSTs (contactcenter/services/idempotency.py): how long a key's first answer is replayed,
# and after how long a first request that never finished (its process died) no longer blocks a retry.
IDEMPOTENCY_KEY_TTL_SECONDS = env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600)
IDEMPOTENCY_IN_PROGRESS_SECONDS = env_int("IDEMPOTENCY_IN_PROGRESS_SECONDS", 120)
