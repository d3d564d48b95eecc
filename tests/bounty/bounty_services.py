"""Real services for the end-to-end and browser tests: Redis, a Celery worker subprocess, a shared ledger.

Redis is the tests' database "bounty" of tests/redis_databases.py (BOUNTY_TEST_REDIS_URL when set), kept for
these tests and flushed before and after; the worker opens the test database through DATABASE_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bounty_testing import ROOT, model_artifact
from django.db import connection
from redis_databases import redis_url

from bounty import chain
from bounty.celery import app as celery_app
from bounty.models import Bounty, ModelVersion

REDIS_TEST_URL = redis_url("bounty")


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user, host, port = (
        settings["USER"] or "postgres",
        settings["HOST"] or "127.0.0.1",
        settings["PORT"] or 5432,
    )
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


class Runtime:
    def __init__(self, base: Path, keys_dir: Path) -> None:
        self.base, self.keys_dir = base, keys_dir
        self.ledger, self.media = base / "ledger", base / "media"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": REDIS_TEST_URL,
            "VAR_DIR": str(self.base),
            "LEDGER_DIR": str(self.ledger),
            "MEDIA_ROOT": str(self.media),
            "KEYS_DIR": str(self.keys_dir),
            "CHAIN_BACKEND": "local",
            "NETWORK": "regtest",
            "DJANGO_SETTINGS_MODULE": "bounty.settings",
            "PYTHONPATH": str(ROOT),
        }


def start_worker(runtime: Runtime, name: str, concurrency: int = 1) -> subprocess.Popen:
    log = open(runtime.base / f"{name}.log", "ab")  # noqa: SIM115  (closed with the process)
    command = [sys.executable, "-m", "celery", "-A", "bounty", "worker", "--loglevel", "INFO"]
    command += ["--concurrency", str(concurrency), "--hostname", f"{name}-{os.getpid()}@%h"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(
        command, env=runtime.environment(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )


def wait_for_worker(process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with status {process.returncode}")
        if celery_app.control.ping(timeout=0.5):
            return
    raise RuntimeError("the worker did not answer a ping")


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def use_broker(url: str) -> None:
    """Point this process's Celery app (which the web views publish through) at `url`, dropping any
    connection an earlier test opened to the default broker."""
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, keys_dir) -> Runtime:  # type: ignore[no-untyped-def]
    return Runtime(tmp_path_factory.mktemp("e2e"), keys_dir)


@pytest.fixture(scope="module")
def worker(runtime: Runtime, django_db_setup, django_db_blocker) -> Iterator[subprocess.Popen]:  # type: ignore[no-untyped-def]
    broker = redis.Redis.from_url(REDIS_TEST_URL)
    broker.flushdb()
    use_broker(REDIS_TEST_URL)
    process = start_worker(runtime, "e2e")
    try:
        wait_for_worker(process)
        yield process
    finally:
        stop_worker(process)
        broker.flushdb()


@pytest.fixture
def live_bounty(runtime: Runtime, settings, request) -> Bounty:  # type: ignore[no-untyped-def]
    """A deployed bounty (for a 7 unless the test module sets BOUNTY_DIGIT) on the shared ledger."""
    digit = getattr(request.module, "BOUNTY_DIGIT", 7)
    settings.LEDGER_DIR, settings.MEDIA_ROOT = runtime.ledger, runtime.media
    chain.reset()
    version = ModelVersion.register(model_artifact(), name="e2e", activate=True)
    chain.faucet(chain.operator_address(), 1_000_000)
    from bounty.funding import draft_bounty, fund_and_deploy

    bounty = draft_bounty(version, digit, slots=2, reward=1000)

    fund_and_deploy(bounty)
    return bounty
