"""scripts/test-services.sh, which `make test` runs smoke.sh and pytest through: with no PostgreSQL and no
Redis answering where it looks, it starts private ones, hands their URLs to the command, and stops them and
removes their folder afterwards, whether the command passes, fails or is interrupted; servers that answer are
used as they are. Real initdb/pg_ctl and redis-server; "absent" is a port where nothing listens."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from redis_databases import DATABASES

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "test-services.sh"

pytestmark = pytest.mark.services

# What the command run inside the wrapper records: the environment it was given, and that both servers serve.
PROBE = """
import json, os, sys
import psycopg, redis
with psycopg.connect(os.environ["BOUNTY_POSTGRES_URL"]) as db:
    port = db.execute("SELECT current_setting('port')").fetchone()[0]
client = redis.Redis.from_url(os.environ["BOUNTY_TEST_REDIS_URL"])
client.set("test-services", "ok")
names = [n for n in os.environ if n.startswith(("BOUNTY_", "SMOKE_", "RETRAINING_"))]
record = {"env": {n: os.environ[n] for n in names}, "postgres_port": int(port),
          "redis": client.get("test-services").decode()}
open(sys.argv[1], "w").write(json.dumps(record))
"""


def nothing_listens() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def absent_environment(tmp_path: Path) -> dict[str, str]:
    """Both servers 'absent' for the wrapper, every override of an outer run removed."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BOUNTY_", "SMOKE_", "RETRAINING_", "TEST_SERVICES_"))
    }
    environment["BOUNTY_POSTGRES_URL"] = f"postgres://postgres@127.0.0.1:{nothing_listens()}/test"
    environment["BOUNTY_TEST_REDIS"] = f"redis://127.0.0.1:{nothing_listens()}"
    environment["BOUNTY_TEST_REDIS_URL"] = "redis://127.0.0.1:1/9"  # replaced by the private server's
    environment["TEST_SERVICES_REPORT"] = str(tmp_path / "report")
    return environment


def started(tmp_path: Path) -> dict[str, str]:
    lines = (tmp_path / "report").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def assert_all_stopped(report: dict[str, str]) -> None:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgres://postgres@127.0.0.1:{report['postgres_port']}/test", connect_timeout=3)
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=int(report["redis_port"]), socket_connect_timeout=2).ping()
    with pytest.raises(ProcessLookupError):
        os.kill(int(report["redis_pid"]), 0)
    assert not Path(report["work"]).exists()


@pytest.mark.timeout(300)
def test_it_starts_private_servers_when_none_answer_and_stops_them_after(tmp_path: Path) -> None:
    environment = absent_environment(tmp_path)
    outer, inner = tmp_path / "outer.json", tmp_path / "inner.json"
    # Inside, a second wrapper (as `make smoke` inside `make test`) finds both answering and starts nothing.
    command = (
        f'"$0" -c "$1" {outer} && TEST_SERVICES_REPORT={tmp_path}/inner-report '
        f'bash {SCRIPT} "$0" -c "$1" {inner}'
    )
    result = subprocess.run(
        [str(SCRIPT), "bash", "-c", command, sys.executable, PROBE],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = started(tmp_path)
    seen = json.loads(outer.read_text())
    assert seen["redis"] == "ok" and seen["postgres_port"] == int(report["postgres_port"])
    env = seen["env"]
    assert env["BOUNTY_POSTGRES_URL"] == f"postgres://postgres@127.0.0.1:{report['postgres_port']}/test"
    assert (env["SMOKE_PG_HOST"], env["SMOKE_PG_PORT"], env["SMOKE_PG_USER"]) == (
        "127.0.0.1", report["postgres_port"], "postgres",
    )  # fmt: skip
    server = f"redis://127.0.0.1:{report['redis_port']}"
    assert env["BOUNTY_TEST_REDIS"] == server
    for database in DATABASES.values():  # every database of the table, the old override included
        assert env[database.variable] == f"{server}/{database.number}"

    assert json.loads(inner.read_text())["env"] == env
    assert not (tmp_path / "inner-report").exists(), "the inner run started servers of its own"
    assert "answers at" in result.stdout and result.stdout.count("started a private") == 2
    assert "stopped the private PostgreSQL" in result.stdout
    assert "stopped the private redis-server" in result.stdout
    assert_all_stopped(report)


@pytest.mark.timeout(300)
def test_a_failing_command_keeps_its_status_and_the_servers_still_stop(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "bash", "-c", "exit 3"],
        env=absent_environment(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    assert_all_stopped(started(tmp_path))


def interruptible() -> None:
    """SIGINT as a terminal's foreground job has it. A command started in the background by a
    non-interactive shell (as a CI runner may start `make test`) inherits SIGINT ignored, and a shell
    cannot trap a signal ignored when it started: without this the test would wait out the command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.timeout(300)
def test_ctrl_c_stops_the_servers(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    # Its own process group, as a terminal's foreground job: Ctrl-C sends SIGINT to the whole group.
    process = subprocess.Popen(
        [str(SCRIPT), "bash", "-c", f"touch {ready} && sleep 120"],
        env=absent_environment(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True, preexec_fn=interruptible,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, "the command never started"
            time.sleep(0.2)
        report = started(tmp_path)
        psycopg.connect(f"postgres://postgres@127.0.0.1:{report['postgres_port']}/test").close()
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, output
    assert "stopped the private PostgreSQL" in output and "stopped the private redis-server" in output
    assert_all_stopped(report)
