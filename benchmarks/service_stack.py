"""The private stack that the service benchmarks run on: a temporary folder, a redis-server on a free loopback
port, and the environment that points the service at them (SQLite in the folder unless BENCH_DATABASE_URL
names a scratch database, a fresh local ledger, generated regtest keys, no rate or burst limits)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    work: Path
    log: IO[bytes]
    started: list[subprocess.Popen] = field(default_factory=list)

    def start(self, command: list[str], **options: object) -> subprocess.Popen:
        """Start a process whose output goes to the stack's log; it is stopped when the stack closes."""
        process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, **options)  # type: ignore[call-overload]
        self.started.append(process)
        return process

    def start_workers(self, count: int, name: str) -> None:
        """`count` Celery worker processes of one slot each, named name0, name1, ..."""
        for number in range(count):
            command = [sys.executable, "-m", "celery", "-A", "bounty", "worker", "--concurrency", "1"]
            command += ["--loglevel", "WARNING", "--hostname", f"{name}{number}@%h", "--without-gossip"]
            command += ["--without-mingle", "--without-heartbeat"]
            self.start(command, cwd=ROOT)

    def start_web(self, port: int) -> None:
        """gunicorn (2 processes of 4 threads) on 127.0.0.1:`port`, once it listens."""
        gunicorn = [
            sys.executable,
            "-m",
            "gunicorn",
            "bounty.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
        ]
        gunicorn += ["--workers", "2", "--threads", "4", "--timeout", "60"]
        wait_for_port(port, 60, self.start(gunicorn, cwd=ROOT))


def wait_for_port(port: int, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with status {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def wait_for_workers(count: int, timeout: float) -> None:
    """Until `count` workers answer a ping (the Celery app of the environment service_stack set)."""
    from bounty.celery import app

    deadline = time.monotonic() + timeout
    while len(app.control.ping(timeout=0.5)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not answer a ping")


@contextmanager
def service_stack(prefix: str, **settings: str) -> Iterator[Stack]:
    """Set the environment for the service (plus `settings`), start redis-server, stop everything at exit."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    redis_port = free_port()
    os.environ.update(
        {
            "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{work / 'bench.sqlite3'}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "VAR_DIR": str(work),
            "LEDGER_DIR": str(work / "ledger"),
            "MEDIA_ROOT": str(work / "media"),
            "KEYS_DIR": str(work / "keys"),
            "CHAIN_BACKEND": "local",
            "NETWORK": "regtest",
            "RATE_LIMIT_PER_ADDRESS": "0",  # every submission comes from one machine
            "RATE_LIMIT_PER_IP": "0",
            "BURST_LIMIT_PER_IP": "0",
            "DJANGO_SETTINGS_MODULE": "bounty.settings",
            "PYTHONPATH": str(ROOT),
            **settings,
        }
    )
    sys.path.insert(0, str(ROOT))
    # Stopped with SIGTERM (a timeout, a parent giving up): leave through the cleanup below all the same.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    with (work / "services.log").open("ab") as log:
        stack = Stack(work, log)
        try:
            redis = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
            stack.start([*redis, "--dir", str(work)])
            yield stack
        finally:
            for process in reversed(stack.started):
                process.terminate()
            for process in stack.started:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
