"""The private stack that the service benchmarks run on: a temporary folder, a redis-server on a free loopback
port, and the environment that points the service at them (SQLite in the folder unless BENCH_DATABASE_URL
names a scratch database, a fresh local ledger, generated regtest keys, no rate or burst limits)."""

from __future__ import annotations

import os
import shutil
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
from urllib.parse import urlsplit, urlunsplit

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
    # What the service's processes (web, workers) see on top of this process's environment: the database
    # through PgBouncer, say, while this process migrates and deploys directly, as compose's `migrate` does.
    service_env: dict[str, str] = field(default_factory=dict)
    pgbouncer: tuple[str, int] = ("", 0)  # (user, port) once started

    def start(self, command: list[str], **options: object) -> subprocess.Popen:
        """Start a process whose output goes to the stack's log; it is stopped when the stack closes."""
        process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, **options)  # type: ignore[call-overload]
        self.started.append(process)
        return process

    def start_service(self, command: list[str], **env: str) -> subprocess.Popen:
        return self.start(command, cwd=ROOT, env={**os.environ, **self.service_env, **env})

    def start_workers(self, count: int, name: str, queue: str = "") -> None:
        """`count` Celery worker processes of one slot each, named name0, name1, ... (on `queue` only, if
        given)."""
        for number in range(count):
            command = [sys.executable, "-m", "celery", "-A", "bounty", "worker", "--concurrency", "1"]
            command += ["--loglevel", "WARNING", "--hostname", f"{name}{number}@%h", "--without-gossip"]
            command += ["--without-mingle", "--without-heartbeat", *(["-Q", queue] if queue else [])]
            self.start_service(command)

    def start_broadcasters(self, count: int, queue: str) -> None:
        """`count` broadcast workers as deploy/compose.yaml runs them: `queue` only, four threads each."""
        for number in range(count):
            command = [sys.executable, "-m", "celery", "-A", "bounty", "worker", "--loglevel", "WARNING"]
            command += ["--hostname", f"broadcast{number}@%h", "-Q", queue, "--pool", "threads"]
            command += ["--concurrency", "4", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            self.start_service(command)

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
        wait_for_port(port, 60, self.start_service(gunicorn))

    def start_pgbouncer(self, database_url: str, pool_size: int, pool_mode: str, auth_type: str) -> str:
        """PgBouncer in front of `database_url`'s server, `pool_size` server connections per database (the
        pool mode and client authentication as deploy/compose.yaml gives them); returns the URL through it."""
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
        parts = urlsplit(database_url)
        user, host = parts.username or "postgres", parts.hostname or "127.0.0.1"
        port, folder = free_port(), self.work / "pgbouncer"
        folder.mkdir()
        config = folder / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={host} port={parts.port or 5432} user={user}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = {auth_type}\npool_mode = {pool_mode}\nmax_client_conn = 1000\n"
            f"default_pool_size = {pool_size}\nadmin_users = {user}\nstats_users = {user}\n"
        )
        # It logs to the stack's log. It refuses to run as root: as root, it becomes the postgres user.
        as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
        wait_for_port(port, 30, self.start([binary, *as_user, str(config)]))
        self.pgbouncer = (user, port)
        return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}"))

    def pgbouncer_transactions(self, database: str) -> int:
        """How many transactions PgBouncer passed to `database` (its admin console's SHOW STATS)."""
        user, port = self.pgbouncer
        command = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "pgbouncer", "-AtF", ","]
        shown = subprocess.run([*command, "-c", "SHOW STATS"], capture_output=True, text=True, check=True)
        rows = [line.split(",") for line in shown.stdout.splitlines()]
        return sum(int(row[1]) for row in rows if row[0] == database)  # database, total_xact_count, ...


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
