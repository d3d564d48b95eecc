"""The Redis databases the tests use, in one table. Each suite flushes or deletes keys in its own database
only, so two suites (or a test and deploy/smoke.sh) never take or drop each other's keys.

The server is BOUNTY_TEST_REDIS (default redis://127.0.0.1:6379); scripts/test-services.sh points it at a
private redis-server when nothing answers there. Each database's own variable, when set, replaces its whole
URL (so two checkouts on one machine can keep apart).

Run as a script: `python tests/redis_databases.py NAME` prints that database's URL (deploy/smoke.sh reads
its own this way); `python tests/redis_databases.py --on SERVER` prints VARIABLE=URL for every database on
SERVER (the lines scripts/test-services.sh exports for a private server).
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

SERVER_VARIABLE = "BOUNTY_TEST_REDIS"
DEFAULT_SERVER = "redis://127.0.0.1:6379"


class RedisDatabase(NamedTuple):
    number: int
    variable: str  # replaces the whole URL when set
    used_by: str


# Database 0 is left to `make run` and a developer's own service; the numbers below are the tests'.
DATABASES: dict[str, RedisDatabase] = {
    "faults": RedisDatabase(11, "BOUNTY_FAULT_REDIS_URL", "the fault tests' broker, a private queue per run"),
    "retraining": RedisDatabase(12, "RETRAINING_TEST_REDIS_URL", "the retraining end-to-end test's broker"),
    "smoke": RedisDatabase(13, "SMOKE_REDIS_URL", "deploy/smoke.sh (flushed before and after)"),
    "ops": RedisDatabase(14, "BOUNTY_OPS_REDIS_URL", "the health tests' worker heartbeats"),
    "bounty": RedisDatabase(
        15, "BOUNTY_TEST_REDIS_URL", "the end-to-end and browser tests' broker (flushed)"
    ),
}


def server() -> str:
    return (os.environ.get(SERVER_VARIABLE) or DEFAULT_SERVER).rstrip("/")


def redis_url(name: str) -> str:
    """The URL of the tests' database `name` (a key of DATABASES)."""
    database = DATABASES[name]
    return os.environ.get(database.variable) or f"{server()}/{database.number}"


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--on":
        for database in DATABASES.values():
            print(f"{database.variable}={argv[1].rstrip('/')}/{database.number}")
        return 0
    if len(argv) == 1 and argv[0] in DATABASES:
        print(redis_url(argv[0]))
        return 0
    names = ", ".join(DATABASES)
    print(f"usage: redis_databases.py NAME ({names}) | --on redis://HOST:PORT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
