"""Health probes: the database, Redis, the chain backend and the worker heartbeat, each timed and explained.

`/readyz`, `manage.py health` and the smoke test all read `run_all()`, so they can never disagree. A probe's
detail never carries a secret: URLs are shown without their password.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bounty.checks import redacted
from bounty.ops import heartbeat


@dataclass(frozen=True)
class Probe:
    name: str
    ok: bool
    detail: str
    milliseconds: int

    def to_json(self) -> dict:
        return asdict(self)


def database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise RuntimeError(f"{len(pending)} migration(s) not applied: run `manage.py migrate`")
    return f"{connection.vendor}, migrations applied"


def redis_broker() -> str:
    import redis

    redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    return f"{redacted(settings.REDIS_URL)} answers"


def chain_backend() -> str:
    from bounty import chain

    height = chain.ping()
    where = "local ledger" if settings.CHAIN_BACKEND == "local" else f"ARC, {settings.NETWORK}"
    return f"{where}, height {height}"


def worker_heartbeat() -> str:
    limit = heartbeat.max_age()
    parts = []
    for kind in heartbeat.KINDS:
        seconds, host = heartbeat.age(kind)
        if seconds is None:
            raise RuntimeError(f"no {kind} heartbeat yet: is the Celery {kind} running?")
        if seconds > limit:
            raise RuntimeError(f"the last {kind} heartbeat ({host}) is {seconds:.0f} s old (limit {limit} s)")
        parts.append(f"{kind} {seconds:.0f} s ago ({host})")
    return ", ".join(parts)


PROBES: dict[str, Callable[[], str]] = {
    "database": database,
    "redis": redis_broker,
    "chain": chain_backend,
    "worker": worker_heartbeat,
}


def run(name: str) -> Probe:
    started = time.monotonic()
    try:
        detail, ok = PROBES[name](), True
    except Exception as error:  # a probe reports every failure, it never raises
        detail, ok = f"{type(error).__name__}: {error}", False
    return Probe(name, ok, detail[:300], round((time.monotonic() - started) * 1000))


def run_all(names: list[str] | None = None) -> list[Probe]:
    return [run(name) for name in names or list(PROBES)]
