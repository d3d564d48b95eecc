"""Structured logs: one JSON object per line, with the request id (web) or the Celery task id (workers).

`RequestIdMiddleware` (bounty.ops.middleware) puts the request id in a context variable; `JsonFormatter`
reads it, and Celery's current task, for every record. `RedactSecretsFilter` replaces the values of the
configured secrets (SECRET_KEY, the keys, the ARC API key, passwords in DATABASE_URL/REDIS_URL), the password
of any URL and anything shaped like a WIF private key with `***`, so a secret that reaches a log record never
reaches the log: in the message, in every field passed with `extra=`, and in the traceback and stack, which
stay readable with only the secret replaced.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# A WIF private key: base58, 51 characters (uncompressed) or 52 (compressed), starting 5, K, L, 9 or c.
WIF_PATTERN = re.compile(r"\b[5KL9c][1-9A-HJ-NP-Za-km-z]{50,51}\b")
# The password of any `scheme://user:password@host` URL, configured or not (a broker or database URL that
# reaches an exception message need not be the one in the settings). A password with `/` or `@` in it must
# be percent-encoded to be a URL at all, so the password ends at the first of them.
URL_PASSWORD_PATTERN = re.compile(r"(?P<before>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/@]+@", re.IGNORECASE)
SECRET_SETTINGS = ("SECRET_KEY", "OPERATOR_KEY", "ADMIN_KEY", "ARC_API_KEY")
URL_SETTINGS = ("DATABASE_URL", "REDIS_URL", "ARC_URL", "WOC_URL")
STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def current_task() -> tuple[str | None, str | None]:
    try:
        from celery import current_task as task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None, None
    if task is None or not getattr(task, "request", None) or task.request.id is None:
        return None, None
    return task.request.id, task.name


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id"?, "task_id"?, "task"?, "exception"?, ...extra}`"""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        task_id, task_name = current_task()
        if task_id:
            entry["task_id"], entry["task"] = task_id, task_name
        for name, value in vars(record).items():
            if name not in STANDARD_ATTRIBUTES and name not in entry and not name.startswith("_"):
                entry[name] = (
                    value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
                )
        # RedactSecretsFilter leaves the redacted traceback in exc_text (and drops exc_info when the
        # traceback held a secret): prefer that text, as logging.Formatter.format does.
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def secret_values() -> list[str]:
    """The configured secrets, longest first (so that a secret containing another is replaced whole)."""
    from django.conf import settings

    values = [str(getattr(settings, name, "") or "") for name in SECRET_SETTINGS]
    for name in URL_SETTINGS:
        password = urlsplit(str(getattr(settings, name, "") or "")).password
        values.append(password or "")
    return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    text = URL_PASSWORD_PATTERN.sub(r"\g<before>***@", text)
    return WIF_PATTERN.sub("***", text)


def redact_value(value: object, secrets: list[str]) -> object:
    """An `extra=` value with the secrets replaced: a string redacted; a number, bool or None kept; any
    other object kept unless its str() or repr() (what a formatter would print) holds a secret, in which
    case it becomes its redacted repr()."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, int | float | bool | type(None)):
        return value
    shown = repr(value)
    cleaned = redact(shown, secrets)
    if cleaned != shown:
        return cleaned
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not stop the log line; its repr was clean
        return value
    return value if redact(text, secrets) == text else cleaned


class RedactSecretsFilter(logging.Filter):
    """Rewrites the record's message, its `extra=` fields, its exception text and its stack with every
    secret replaced by `***`."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._secrets: list[str] | None = None

    def secrets(self) -> list[str]:
        if self._secrets is None:
            try:
                self._secrets = secret_values()
            except Exception:  # settings not ready yet: WIF pattern only, try again next time
                return []
        return self._secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets()
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for name, value in list(vars(record).items()):
            if name not in STANDARD_ATTRIBUTES and not name.startswith("_"):
                cleaned_value = redact_value(value, secrets)
                if cleaned_value is not value:
                    setattr(record, name, cleaned_value)
        if record.exc_info and record.exc_info[1] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            # Formatters print exc_text when it is set, so the traceback stays in the log with only the
            # secret replaced; exc_info goes when it held one, so no later formatter renders it afresh.
            record.exc_text = redact(text, secrets)
            if record.exc_text != text:
                record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True


def logging_config(level: str = "INFO", json_logs: bool = True) -> dict:
    """The LOGGING dict of production: everything to stderr (journald or Docker collect it), JSON lines."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "bounty.ops.logs.RedactSecretsFilter"}},
        "formatters": {
            "json": {"()": "bounty.ops.logs.JsonFormatter"},
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if json_logs else "plain",
                "filters": ["redact"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"level": level, "propagate": True},
            "django.db.backends": {"level": "INFO", "propagate": True},  # SQL holds data: never DEBUG
            "celery": {"level": level, "propagate": True},
            "bounty": {"level": level, "propagate": True},
            "contracts": {"level": level, "propagate": True},
        },
    }
