"""deploy/compose.yaml's layout, run for real on one machine (no container engine runs here).

`benchmarks/load_http.py --web 2 --workers 2 --broadcasters 1 --pgbouncer 4` starts what compose starts, as
processes: two gunicorn servers that the clients take in turn, two verification workers taking every queue,
a broadcast worker of four threads on the broadcast queue alone, and PgBouncer in transaction mode between
every one of them and PostgreSQL, with compose's settings (Django keeps no connection and opens no
server-side cursor). Four server connections for some thirty clients, so PgBouncer hands each transaction
whatever connection is free: the slot reservations, the stored claims and the payouts must still come out
exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = 24

pytestmark = pytest.mark.services


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """An empty database on the tests' PostgreSQL server, dropped afterwards."""
    server = os.environ.get("BOUNTY_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    name = f"bench_topology_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_composes_layout_pays_each_submission_once_through_pgbouncer(scratch_database: str) -> None:
    command = [sys.executable, "benchmarks/load_http.py", "--submissions", str(SUBMISSIONS)]
    command += ["--concurrency", "6", "--web", "2", "--workers", "2", "--broadcasters", "1"]
    command += ["--pgbouncer", "4", "--timeout", "240", "--json"]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "BENCH_DATABASE_URL": scratch_database},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout)

    assert result["database"] == "postgresql"
    assert result["accepted"] == SUBMISSIONS and result["http_errors"] == 0, result["first_errors"]
    assert result["accepted_by_web_server"] == [SUBMISSIONS // 2, SUBMISSIONS // 2]
    # Every submission settled (paid, or held or kept by the second opinion and pay on learn), none twice.
    assert result["lost"] == 0
    assert result["paid"] + result["held_or_pending"] + result["rejected"] == SUBMISSIONS
    assert result["paid"] >= SUBMISSIONS - 3, result
    assert result["double_payouts"] == 0 and result["double_spends"] == 0
    # The service's transactions went through PgBouncer: several per submission (web and worker steps).
    assert result["pgbouncer_transactions"] >= 5 * SUBMISSIONS, result
