"""PIG Platform settings: everything deploy-specific comes from the environment.

Laptop defaults need no server: a SQLite file and kombu's filesystem broker under ./var/.
Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY (or SECRET_KEY_FILE), ALLOWED_HOSTS.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    # Secrets may come from a file (Docker/Kubernetes secrets): NAME_FILE wins over NAME.
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)
VAR_DIR = Path(envstr("PIG_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and not envbool("PIG_TESTING", "pytest" in sys.modules):
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "annotation",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "pigplatform.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a locked-out authentication into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pigplatform.urls"
WSGI_APPLICATION = "pigplatform.wsgi.application"
ASGI_APPLICATION = "pigplatform.asgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'pig.sqlite3'}"),
        # Reusing a connection across requests saves PostgreSQL's per-connection start-up (it doubled judging
        # throughput in a load run); 0 reconnects on every request, as Django's default does.
        conn_max_age=envint("DB_CONN_MAX_AGE", 600),
        # A persistent connection is checked before a request reuses it, so the first request after a
        # database restart reconnects instead of failing.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web server and worker write the same file: wait for locks instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": envstr("CACHE_URL")}
        if envstr("CACHE_URL").startswith("redis")
        # Shared by the web server and the worker on one machine (results figures, login counters).
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotation:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Page CSS and JavaScript live in static/ (never inline: see the Content-Security-Policy below). In
# production WhiteNoise serves them from STATIC_ROOT under content-hashed names, cached for a year;
# that needs `manage.py collectstatic` after each deploy. DEBUG (runserver) and the tests serve the
# source files by their plain names and need no collectstatic.
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_MANIFEST = envbool("PIG_STATIC_MANIFEST", not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# Security: strict unless DEBUG. Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER via env.
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
# Subdomains and the browsers' preload list are opt-in: both bind every other site under the domain (and
# preloading cannot be undone quickly), which this application cannot know is safe.
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# One TLS-terminating proxy in front: trust its X-Forwarded-Proto, and take the client's address from the
# last X-Forwarded-For entry (the one the proxy appended) for the login lockout (pigplatform/auth.py).
BEHIND_PROXY = envbool("USE_X_FORWARDED_PROTO")
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy on every response (django-csp), admin included: scripts and styles only from
# our own static files, no inline code, no eval. Model output is rendered as sanitised HTML on the
# judging page; this is the second wall if anything ever slipped through.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Login lockout (django-axes): failures are counted per (username, client address) pair, so an attacker
# cannot lock an account out by name from elsewhere, and people behind one proxy keep separate buckets.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(seconds=envint("LOGIN_FAILURE_WINDOW", 900))
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "pigplatform.auth.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/login.html"
AXES_HTTP_RESPONSE_CODE = 429

AXES_VERBOSE = False  # the lockouts themselves are still logged; not a banner on every start

# The JSON API is throttled per user (django-ratelimit, fixed one-second windows counted in the shared
# cache: Redis in production, the file cache on one machine). A person clicking fast stays far below it;
# a runaway client loop gets 429 (annotation/api.py).
PIG_API_RATE = envstr("PIG_API_RATE", "20/s")
SILENCED_SYSTEM_CHECKS: list[str] = []
if not SECURE_HSTS_INCLUDE_SUBDOMAINS:
    SILENCED_SYSTEM_CHECKS.append("security.W005")  # opt-in by environment (see above)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# Celery. Default broker: kombu's filesystem transport, which works across processes on one machine
# with no server. Real deployments set CELERY_BROKER_URL (redis:// or amqp://).
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem"):
    for sub in ("in", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "in"),
        "data_folder_out": str(BROKER_DIR / "in"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    _default_results = f"file://{VAR_DIR / 'celery-results'}"
    (VAR_DIR / "celery-results").mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)}
    _default_results = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
CELERY_RESULT_BACKEND = envstr("CELERY_RESULT_BACKEND", _default_results) or None
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 3600)
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 3900)

PIG = {
    # Where trained checkpoints, exports and local models live.
    "MODELS_DIR": Path(envstr("PIG_MODELS_DIR", str(VAR_DIR / "models"))),
    "RUNS_DIR": Path(envstr("PIG_RUNS_DIR", str(VAR_DIR / "runs"))),
    "EXPORTS_DIR": Path(envstr("PIG_EXPORTS_DIR", str(VAR_DIR / "exports"))),
    # A running training run whose heartbeat is older than this is shown as dead and may be resumed.
    "TRAINING_DEAD_AFTER_S": envint("PIG_TRAINING_DEAD_AFTER_S", 180),
    # Celery's default time limits suit short tasks; an RL run supervises its child for days.
    "TRAINING_TIME_LIMIT_S": envint("PIG_TRAINING_TIME_LIMIT_S", 14 * 24 * 3600),
    # CPU training: threads per process (empty: every core; small models often train faster with fewer).
    "TRAINING_CPU_THREADS": envint("PIG_TRAINING_CPU_THREADS", 0),
    # Transient backend errors in a generation chunk: Celery retries with exponential backoff and jitter.
    "GENERATION_MAX_RETRIES": envint("PIG_GENERATION_MAX_RETRIES", 4),
    "GENERATION_RETRY_BASE_S": envint("PIG_GENERATION_RETRY_BASE_S", 15),
    # `openai`-backend systems with no endpoint of their own.
    "OPENAI_BASE_URL": envstr("OPENAI_BASE_URL"),
}
# Keys for `openai`-backend systems: OPENAI_API_KEY, or the variable a system names in `api_key_env`. Only
# names ending in _KEY or _TOKEN (or given as NAME_FILE) qualify, and never SECRET_KEY: a system's
# configuration must not be able to send this site's own secret to an endpoint.
PIG_API_KEYS = {
    name: envstr(name)
    for name in {n.removesuffix("_FILE") for n in os.environ}
    if name.endswith(("_KEY", "_TOKEN")) and name != "SECRET_KEY"
}
# Extra regular expressions that mark a candidate as self-identifying (beyond system names and vendors).
PIG_BLINDING_PATTERNS = envlist("PIG_BLINDING_PATTERNS")
# The matcher that scores people's answers in the simulator-fidelity report (the reward's default matcher).
PIG_FIDELITY_MATCHER = envstr("PIG_FIDELITY_MATCHER", "embedding")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}
