"""Settings of the bounty service, read from the environment.

The defaults are the embedded set-up of `make run`: SQLite and media under the project folder, a private
Redis, the local ledger in var/ledger, and operator/admin keys generated into 0600 files under var/keys.
Production sets DATABASE_URL (PostgreSQL), REDIS_URL, CHAIN_BACKEND=arc and real keys.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from bounty.env import envbool, envchoice, envint, envlist, envsecret, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = envbool("DEBUG", True)
SECRET_KEY = envsecret("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-debug"
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
SITE_ROOT = envstr("SITE_ROOT", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "bounty",
    "bounty.ops",
    "bounty.retraining",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "bounty.views.limit_request_body",  # before anything reads a body far over the upload limit
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bounty.urls"
WSGI_APPLICATION = "bounty.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bounty.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 0))}
except (ValueError, dj_database_url.UnknownSchemeError) as error:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL ({error})") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and beat share one file: WAL lets readers run beside the writer, IMMEDIATE transactions
    # take the write lock up front instead of failing on upgrade, and the timeout waits out short writes.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# Behind PgBouncer in transaction mode (deploy/compose.yaml) each transaction may get another server
# connection, so a server-side cursor (what .iterator() opens on PostgreSQL) could vanish mid-read: 1 fetches
# client-side instead.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = envbool("DB_DISABLE_SERVER_SIDE_CURSORS", False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
# In development (DEBUG) static files are served from the apps by WhiteNoise's finders; production collects
# them into STATIC_ROOT.
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles"))) if not DEBUG else None
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(BASE_DIR / "media")))

# Uploads: the form refuses anything larger before Pillow sees it.
MAX_UPLOAD_BYTES = envint("MAX_UPLOAD_BYTES", 2 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES * 2
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES

# Celery and Redis
REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is delivered again; every task is idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection before and after every task unless this is set (then
# only every this many tasks): on PostgreSQL, a new server process per task. Workers keep their connections
# as DB_CONN_MAX_AGE says instead, as web processes do: bounty.tasks closes the broken and expired ones
# around each task, as Django does around each request.
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 600)}
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
# One Redis may serve several deployments (or test runs): each publishes to and consumes its own queue.
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_QUEUE", "celery")
# Verification (classify, screen, reserve a slot, build and verify the claim) and broadcast may each have a
# queue, so each gets workers of its own (deploy/compose.yaml, docs/scale.md). Both default to CELERY_QUEUE.
# A worker started without -Q consumes every queue named here.
CELERY_VERIFY_QUEUE = envstr("CELERY_VERIFY_QUEUE", CELERY_TASK_DEFAULT_QUEUE)
CELERY_BROADCAST_QUEUE = envstr("CELERY_BROADCAST_QUEUE", CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_QUEUES = {
    name: {"routing_key": name}
    for name in dict.fromkeys((CELERY_TASK_DEFAULT_QUEUE, CELERY_VERIFY_QUEUE, CELERY_BROADCAST_QUEUE))
}
CELERY_TASK_ROUTES = {
    "bounty.tasks.process_submission": {"queue": CELERY_VERIFY_QUEUE},
    "bounty.tasks.broadcast_submission": {"queue": CELERY_BROADCAST_QUEUE},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# The chain
NETWORK = envchoice("NETWORK", "regtest", ("mainnet", "testnet", "regtest"))
CHAIN_BACKEND = envchoice("CHAIN_BACKEND", "local", ("local", "arc"))
# "local": the LocalLedger in LEDGER_DIR, opened in-process (the ledger server that `make run` starts mines
# its blocks and serves its HTTP endpoints from the same folder). "arc": ARC at ARC_URL for broadcasts.
LEDGER_DIR = Path(envstr("LEDGER_DIR", str(VAR_DIR / "ledger")))
ARC_URL = envstr("ARC_URL", "")  # empty: TAAL's ARC for NETWORK
WOC_URL = envstr("WOC_URL", "")  # empty: WhatsOnChain for NETWORK
ARC_API_KEY = envsecret("ARC_API_KEY")
WOC_API_KEY = envsecret("WOC_API_KEY")
# ARC calls back to ARC_CALLBACK_URL (this service's public /arc/callback/) with ARC_CALLBACK_TOKEN as a
# bearer credential, so a claim advances as soon as ARC knows, not at the next poll. Empty: polling only.
ARC_CALLBACK_URL = envstr("ARC_CALLBACK_URL", "")
ARC_CALLBACK_TOKEN = envsecret("ARC_CALLBACK_TOKEN")
CHAIN_TIMEOUT = envint("CHAIN_TIMEOUT", 10, minimum=1)
FEE_RATE = envint("FEE_RATE", 100, minimum=1)  # satoshis per 1,000 bytes
CONFIRMATIONS_REQUIRED = envint("CONFIRMATIONS_REQUIRED", 1, minimum=1)

# Keys: WIF in the environment, or a file. On the local ledger a key is generated into a 0600 file
# under var/keys on first use; on a real network a missing key is a configuration error (check bounty.E001).
OPERATOR_KEY = envsecret("OPERATOR_KEY")
ADMIN_KEY = envsecret("ADMIN_KEY")
# The admin's public key (hex, compressed) when the admin key is kept off this server: bounties are locked to
# it, and refunds wait for an admin to sign them offline at /ops/sign/.
ADMIN_PUBKEY = envstr("ADMIN_PUBKEY", "")
KEYS_DIR = Path(envstr("KEYS_DIR", str(VAR_DIR / "keys")))
GENERATE_MISSING_KEYS = envbool("GENERATE_MISSING_KEYS", NETWORK == "regtest")

# Models
MODEL_ARTIFACT = Path(envstr("MODEL_ARTIFACT", str(BASE_DIR / "classifier" / "models" / "default.npz")))

# Abuse controls: submissions per payout address and per IP per window, near-duplicate distance in bits.
RATE_LIMIT_PER_ADDRESS = envint("RATE_LIMIT_PER_ADDRESS", 20, minimum=0)
RATE_LIMIT_PER_IP = envint("RATE_LIMIT_PER_IP", 60, minimum=0)
RATE_LIMIT_WINDOW = envint("RATE_LIMIT_WINDOW", 3600, minimum=1)  # seconds
# The web form's burst limit per IP (IPv6: per /64), checked before an upload is decoded or stored.
BURST_LIMIT_PER_IP = envint("BURST_LIMIT_PER_IP", 10, minimum=0)
BURST_WINDOW = envint("BURST_WINDOW", 60, minimum=1)  # seconds
# Original uploads of rejected submissions are deleted after this many days (the 28x28 image stays), and
# new uploads are refused while the originals kept take more than MAX_STORED_ORIGINALS_BYTES (0: no cap).
ORIGINALS_RETENTION_DAYS = envint("ORIGINALS_RETENTION_DAYS", 7, minimum=1)
MAX_STORED_ORIGINALS_BYTES = envint("MAX_STORED_ORIGINALS_BYTES", 20 * 1024**3, minimum=0)
# Near duplicates (bounty.near_duplicates): near hashes at most this many bits apart (0: no near-duplicate
# check), pixels within NEAR_DUPLICATE_GREY. The index's four bands find every hash within 3 bits, no more.
NEAR_DUPLICATE_BITS = envint("NEAR_DUPLICATE_BITS", 3, minimum=0)
if NEAR_DUPLICATE_BITS > 3:
    raise ImproperlyConfigured(
        f"NEAR_DUPLICATE_BITS must be at most 3, not {NEAR_DUPLICATE_BITS}: the near-duplicate index finds "
        "every hash within 3 bits and no further"
    )
NEAR_DUPLICATE_GREY = float(envint("NEAR_DUPLICATE_GREY_X10", 15, minimum=0)) / 10  # mean |difference|
TRUST_X_FORWARDED_FOR = envbool("TRUST_X_FORWARDED_FOR", False)
# A second, unpublished model (classifier/second_opinion/) that must agree before the operator co-signs;
# a disagreement, or any error asking it, holds the payout for a reviewer. On by default (the published
# weights are public, and crafted images fool them: docs/threats.md); SECOND_OPINION=0 for development only.
SECOND_OPINION = envbool("SECOND_OPINION", True)
SECOND_OPINION_MODEL = envstr(
    "SECOND_OPINION_MODEL", str(BASE_DIR / "classifier" / "models" / "second_opinion.npz")
)

# The sweeper: how long a submission may sit in one state before it is picked up again.
STUCK_AFTER = envint("STUCK_AFTER", 120, minimum=1)  # seconds
# A claim whose broadcast failed transiently this many times stops for an admin ("stalled"), its slot
# reconciled from the chain; a claim the network refused is rebuilt at most CLAIM_MAX_ATTEMPTS times.
BROADCAST_MAX_ATTEMPTS = envint("BROADCAST_MAX_ATTEMPTS", 20, minimum=1)
CLAIM_MAX_ATTEMPTS = envint("CLAIM_MAX_ATTEMPTS", 3, minimum=1)
# Batch bounties (docs/batch.md): an accepted image waits at most this many seconds for its batch of K to
# fill; then the waiting images are claimed in a padded batch.
BATCH_MAX_WAIT = envint("BATCH_MAX_WAIT", 60, minimum=1)  # seconds

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"bounty": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")}},
}
