"""Throughput on an empty database and on one holding N earlier submissions, in the same run.

    .venv/bin/python benchmarks/scale.py --prefill N [--database URL] [--submissions 200] [--concurrency 8]
        [--workers 2] [--json]

Runs `benchmarks/load_http.py` twice, one after the other, with the same load (gunicorn, Celery workers, the
form over HTTP, a fresh local ledger): first on an empty database, then on one that `benchmarks/prefill.py`
filled with N realistic earlier submissions (distinct images with their hashes, a mix of states and
addresses). Prints paid_per_second_empty, paid_per_second_prefilled, p95_seconds_empty,
p95_seconds_prefilled and prefill (N), with each run's whole result.

Without --database each run has its own SQLite file. --database names a scratch PostgreSQL database, which is
DROPPED and created again before each run: its name must start with "bench".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent


def recreate(url: str) -> None:
    """Drop and create the scratch database `url` names, through the server's maintenance database."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance = parts._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def run_load(args: argparse.Namespace, prefill: int) -> dict[str, Any]:
    if args.database:
        recreate(args.database)
    command = [sys.executable, str(HERE / "load_http.py"), "--json", "--prefill", str(prefill)]
    command += ["--submissions", str(args.submissions), "--concurrency", str(args.concurrency)]
    command += ["--workers", str(args.workers), "--timeout", str(args.timeout)]
    environment = {**os.environ, "BENCH_DATABASE_URL": args.database or ""}
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    sys.stderr.write(done.stderr[-3000:])
    try:
        return dict(json.loads(done.stdout))
    except json.JSONDecodeError:
        raise SystemExit(f"load_http.py failed (exit {done.returncode}): {done.stdout[-2000:]}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, required=True, help="earlier submissions in the second run")
    parser.add_argument("--database", default="", help="scratch PostgreSQL URL (dropped and created per run)")
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.prefill < 1:
        parser.error("--prefill must be at least 1")
    if args.database:
        parts = urlsplit(args.database)
        if parts.scheme not in ("postgres", "postgresql") or not parts.path.lstrip("/").startswith("bench"):
            parser.error("--database must be a postgres:// URL whose database name starts with 'bench'")

    empty = run_load(args, 0)
    prefilled = run_load(args, args.prefill)
    load = os.getloadavg()
    result = {
        "paid_per_second_empty": empty["paid_per_second"],
        "paid_per_second_prefilled": prefilled["paid_per_second"],
        "p95_seconds_empty": empty["p95_submit_to_broadcast_s"],
        "p95_seconds_prefilled": prefilled["p95_submit_to_broadcast_s"],
        "prefill": args.prefill,
        "prefilled_over_empty": (
            round(prefilled["paid_per_second"] / empty["paid_per_second"], 3)
            if empty["paid_per_second"] and prefilled["paid_per_second"]
            else None
        ),
        "database": empty["database"],
        "load_average_1_5_15": [round(value, 2) for value in load],
        "empty": empty,
        "prefilled": prefilled,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key in ("paid_per_second_empty", "paid_per_second_prefilled", "p95_seconds_empty"):
            print(f"{key:28} {result[key]}")
        for key in ("p95_seconds_prefilled", "prefill", "prefilled_over_empty", "database"):
            print(f"{key:28} {result[key]}")
        print(f"{'prefill insert':28} {prefilled['prefill']}")
        print(f"{'load average (1, 5, 15 min)':28} {result['load_average_1_5_15']}")
    clean = all(
        run["lost"] == 0 and run["double_payouts"] == 0 and run["double_spends"] == 0
        for run in (empty, prefilled)
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
