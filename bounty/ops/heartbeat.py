"""The worker heartbeat: a timestamp in Redis that proves a Celery worker is alive and taking tasks.

Two beats are recorded. `worker` is written when a worker comes up (Celery's `worker_ready` signal) and every
time it runs the heartbeat task; `beat` only by the heartbeat task, which beat sends every
15 seconds (migration 0001), so a fresh `beat` means beat, the broker and a worker all work.
"""

from __future__ import annotations

import socket
import time

import redis
from django.conf import settings

from bounty import redis_client

KEY_PREFIX = "bounty:ops:heartbeat:"
KINDS = ("worker", "beat")


DEFAULT_MAX_AGE = 60  # seconds; the task runs every 15 (migration 0001)


def max_age() -> int:
    return int(getattr(settings, "HEARTBEAT_MAX_AGE", DEFAULT_MAX_AGE))


def _client() -> redis.Redis:
    return redis_client.shared(settings.REDIS_URL)


def record(kind: str, *, now: float | None = None, hostname: str | None = None) -> None:
    """Store `now` (default: the current time) and the host for `kind`; kept for ten intervals."""
    if kind not in KINDS:
        raise ValueError(f"unknown heartbeat {kind!r}")
    value = f"{now if now is not None else time.time():.3f} {hostname or socket.gethostname()}"
    _client().set(KEY_PREFIX + kind, value, ex=max_age() * 10)


def age(kind: str, *, now: float | None = None) -> tuple[float | None, str]:
    """Seconds since the last `kind` beat and the host that sent it; (None, "") if there was none."""
    raw = _client().get(KEY_PREFIX + kind)
    if raw is None:
        return None, ""
    stamp, _, host = (raw.decode() if isinstance(raw, bytes) else raw).partition(" ")
    return max((now if now is not None else time.time()) - float(stamp), 0.0), host
