"""The bounty suite again on PostgreSQL (127.0.0.1:5432, user postgres, database `test` for the connection;
Django creates and drops its own test database), in a second pytest process with DATABASE_URL switched.

Set BOUNTY_POSTGRES_URL to use another server; scripts/test-services.sh (`make test` runs pytest through
it) sets it to a private cluster when nothing answers there. The PostgreSQL run is part of the suite, never
optional.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from bounty_testing import ON_POSTGRES_RERUN, ROOT

POSTGRES_URL = os.environ.get("BOUNTY_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


@pytest.mark.services
@pytest.mark.skipif(os.environ.get(ON_POSTGRES_RERUN) == "1", reason="already the PostgreSQL run")
@pytest.mark.timeout(1800)
def test_it_passes_the_bounty_suite_on_postgresql() -> None:
    environment = {**os.environ, "DATABASE_URL": POSTGRES_URL, ON_POSTGRES_RERUN: "1"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/bounty",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not browser",
    ]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    summary = result.stdout.strip().splitlines()[-1:] if result.stdout else []
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert summary and "passed" in summary[0], result.stdout[-2000:]
    assert "error" not in summary[0], summary
