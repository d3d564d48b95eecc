"""Production settings: `bounty.settings` with DEBUG off and the web hardened, all from the environment.

DJANGO_SETTINGS_MODULE=bounty.settings_production. Every variable is documented in deploy/env.example.
Plain HTTP reaches gunicorn only from nginx, which terminates TLS and says so in X-Forwarded-Proto; cookies
are Secure, HTTP is redirected to HTTPS (except /healthz and /readyz, probed locally), and HSTS is sent once
SECURE_HSTS_SECONDS is raised (start small: a wrong HSTS header locks browsers out for that long).
Logs are JSON lines on stderr with request and task ids, and secrets are redacted from them.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from bounty.env import envbool, envint, envstr

if envbool("DEBUG", False):
    raise ImproperlyConfigured("DEBUG must be off in production (unset DEBUG or use bounty.settings)")
os.environ["DEBUG"] = "0"  # bounty.settings then requires SECRET_KEY and sets STATIC_ROOT
if not os.environ.get("ALLOWED_HOSTS", "").strip():
    raise ImproperlyConfigured("ALLOWED_HOSTS is required in production (comma-separated host names)")

from bounty.ops.logs import logging_config
from bounty.settings import *  # noqa: F403
from bounty.settings import DATABASES, MIDDLEWARE, NETWORK

DEBUG = False

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and not envbool("ALLOW_SQLITE", False):
    raise ImproperlyConfigured("production runs on PostgreSQL: set DATABASE_URL (or ALLOW_SQLITE=1)")
DATABASES["default"]["CONN_MAX_AGE"] = envint("DB_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# Behind nginx: trust its scheme header (nginx overwrites it, never passes the client's through).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = False
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", True)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"

# Static files are collected (`manage.py collectstatic`) into STATIC_ROOT and served by nginx; WhiteNoise
# serves the same hashed names when a request reaches gunicorn directly (containers without nginx).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

MIDDLEWARE = ["bounty.ops.middleware.RequestIdMiddleware", *MIDDLEWARE]

LOG_LEVEL = envstr("LOG_LEVEL", "INFO").upper()
LOGGING = logging_config(LOG_LEVEL, json_logs=envbool("LOG_JSON", True))
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING above, as JSON with task ids
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_WORKER_CONCURRENCY = envint("CELERY_CONCURRENCY", 2, minimum=1)  # processes per worker service

HEARTBEAT_MAX_AGE = envint("HEARTBEAT_MAX_AGE", 60, minimum=20)  # seconds; the heartbeat runs every 15

if NETWORK == "mainnet" and envbool("GENERATE_MISSING_KEYS", False):
    raise ImproperlyConfigured("GENERATE_MISSING_KEYS is for the local ledger, never mainnet")
