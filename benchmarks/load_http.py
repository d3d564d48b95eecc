"""Load over HTTP: N contributors submit at once through the real web form, two Celery workers pay them.

A bounded load generator (threads + requests, loopback only) GETs the bounty page for its CSRF cookie and
POSTs an MNIST digit as a PNG upload with a fresh payout address, C requests in flight at a time, against
gunicorn started here; two Celery worker processes take each submission to "broadcast" on a fresh local
ledger. Prints throughput (paid per second, first submit to last broadcast), p50/p95 latency from the start
of the POST to "broadcast", HTTP errors, lost submissions (accepted but not final by the deadline), and
double payouts (read from the ledger: outputs paying one submission's address, outpoints spent twice).

    .venv/bin/python benchmarks/load_http.py [--submissions 40] [--concurrency 8] [--timeout 300]
        [--prefill N] [--web 1] [--workers 2] [--broadcasters 0] [--pgbouncer POOL] [--json]

deploy/compose.yaml's layout on one machine: `--web 2 --workers 2 --broadcasters 1 --pgbouncer 40` with
BENCH_DATABASE_URL (PostgreSQL): two gunicorn servers the clients take in turn, verification workers that take
every queue, a broadcast worker of four threads on the broadcast queue alone, and every service process
reaching PostgreSQL through PgBouncer in transaction mode with compose's settings (no connection kept, no
server-side cursor), while this process migrates and deploys directly, as compose's `migrate` does.

Everything it uses runs in a temporary folder and is stopped at the end: a SQLite database (or
BENCH_DATABASE_URL: a scratch database it migrates and fills), a private redis-server on a free port,
gunicorn, the workers and the ledger.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefill import prefill
from service_stack import ROOT, Stack, free_port, service_stack, wait_for_workers

MAX_SUBMISSIONS = 500
MAX_CONCURRENCY = 64


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=40, help=f"at most {MAX_SUBMISSIONS}")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--web", type=int, default=1, help="gunicorn servers (2 processes x 4 threads each)")
    parser.add_argument(
        "--broadcasters", type=int, default=0, help="broadcast workers on a queue of their own (0: one queue)"
    )
    parser.add_argument(
        "--pgbouncer",
        type=int,
        default=0,
        metavar="POOL",
        help="PgBouncer (transaction mode, POOL connections)",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds before giving up")
    parser.add_argument(
        "--prefill", type=int, default=0, help="earlier submissions stored first (benchmarks/prefill.py)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.submissions <= MAX_SUBMISSIONS or not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--submissions 1..{MAX_SUBMISSIONS}, --concurrency 1..{MAX_CONCURRENCY}")
    if not 1 <= args.web <= 8 or not 1 <= args.workers <= 16 or not 0 <= args.broadcasters <= 8:
        parser.error("--web 1..8, --workers 1..16, --broadcasters 0..8")
    if args.pgbouncer and not os.environ.get("BENCH_DATABASE_URL", "").startswith("postgres"):
        parser.error("--pgbouncer needs BENCH_DATABASE_URL, a scratch PostgreSQL database")

    # As in production (bounty/settings_production.py): DEBUG off (with it on, Django keeps and formats every
    # SQL statement), and database connections kept for a minute instead of one per request and per task
    # (on PostgreSQL that is a server process started for each: 28-32 paid/s here, against 38-42 kept).
    production = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_hex(32),
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": os.environ.get("DB_CONN_MAX_AGE", "60"),
    }
    with service_stack("bounty-load-", **production) as stack:
        try:
            return run(args, stack)
        except RuntimeError as error:
            print(f"error: {error}; see {stack.work / 'services.log'}", file=sys.stderr)
            return 2


def run(args: argparse.Namespace, stack: Stack) -> int:
    import django

    django.setup()
    import numpy as np
    import requests
    import yaml
    from django.conf import settings
    from django.core.management import call_command
    from PIL import Image

    from bounty import chain
    from bounty.classify import reference_model
    from bounty.funding import draft_bounty, fund_and_deploy
    from bounty.models import ModelVersion, Submission
    from classifier.data import load_mnist
    from contracts.address import parse_address
    from contracts.keys import Key
    from contracts.txverify import parse_transaction

    digit = 7
    call_command("migrate", verbosity=0)
    version = ModelVersion.register(Path(settings.MODEL_ARTIFACT), activate=True)
    filled = prefill(args.prefill, version, log=lambda line: print(line, file=sys.stderr))
    chain.faucet(chain.operator_address(), 10_000 * (args.submissions + 10) * 100)
    bounty = draft_bounty(version, digit, slots=args.submissions, reward=1000)
    fund_and_deploy(bounty)
    chain.mine(1)

    mnist = load_mnist()
    predicted = np.asarray(reference_model(version.artifact).predict(mnist.x_test.reshape(-1, 784)))
    chosen = np.flatnonzero((predicted == digit) & (mnist.y_test == digit))[: args.submissions]
    uploads = []
    for index in chosen:
        buffer = io.BytesIO()
        Image.fromarray(255 - mnist.x_test[index]).resize((112, 112)).save(buffer, format="PNG")
        uploads.append((buffer.getvalue(), Key.generate("testnet").address))

    if args.pgbouncer:  # with compose's settings: Django keeps no connection, opens no server-side cursor
        compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
        bouncer = compose["services"]["pgbouncer"]["environment"]
        through = stack.start_pgbouncer(
            settings.DATABASE_URL, args.pgbouncer, bouncer["POOL_MODE"], bouncer["AUTH_TYPE"]
        )
        database = {k: v for k, v in compose["x-app-environment"].items() if k.startswith("DB_")}
        stack.service_env.update(DATABASE_URL=through, **database)
    if args.broadcasters:
        stack.service_env.update(CELERY_VERIFY_QUEUE="verify", CELERY_BROADCAST_QUEUE="broadcast")
        stack.start_broadcasters(args.broadcasters, "broadcast")
    stack.start_workers(args.workers, "load")
    ports = [free_port() for _ in range(args.web)]
    for port in ports:
        stack.start_web(port)
    wait_for_workers(args.workers + args.broadcasters, 60)

    pages = [f"http://127.0.0.1:{port}/bounties/{bounty.pk}/" for port in ports]
    local = threading.local()
    errors: list[str] = []
    accepted: dict[str, float] = {}  # public id -> wall-clock time the POST started
    served: Counter[int] = Counter()  # web server (its index) -> submissions it accepted

    def submit(numbered: tuple[int, tuple[bytes, str]]) -> None:
        number, (png, address) = numbered
        server = number % len(pages)  # the clients take the servers in turn
        page = pages[server]
        sessions = getattr(local, "sessions", None)
        if sessions is None:
            sessions = local.sessions = {}
        session = sessions.get(server)
        if session is None:
            session = sessions[server] = requests.Session()
            session.get(page, timeout=30)
        try:
            began = time.time()
            response = session.post(
                page,
                data={"payout_address": address, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
                files={"image": ("digit.png", png, "image/png")},
                headers={"Referer": page},
                allow_redirects=False,
                timeout=60,
            )
        except requests.RequestException as error:
            errors.append(f"{type(error).__name__}: {error}")
            return
        if response.status_code != 302:
            errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            return
        accepted[response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]] = began
        served[server] += 1

    start = time.time()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        list(pool.map(submit, enumerate(uploads)))
    http_seconds = time.time() - start

    # Where a submission rests without the benchmark's help: paid, refused, held for a reviewer (the second
    # opinion disagreed) or kept pending for a later model (another digit, on a bounty that pays on learn).
    final = {"broadcast", "confirmed", "rejected", "held", "pending"}
    mine = Submission.objects.filter(public_id__in=list(accepted))
    while mine.exclude(state__in=final).exists() and time.time() - start < args.timeout:
        time.sleep(0.1)
    rows = list(mine.values_list("public_id", "state", "broadcast_at", "payout_address"))
    latencies = [
        done.timestamp() - accepted[str(public_id)]
        for public_id, state, done, _ in rows
        if state == "broadcast"
    ]
    finished = [done.timestamp() for _, state, done, _ in rows if state == "broadcast"]
    lost = len(accepted) - sum(1 for _, state, _, _ in rows if state in final)
    rejected = sum(1 for _, state, _, _ in rows if state == "rejected")
    held = sum(1 for _, state, _, _ in rows if state in ("held", "pending"))

    # Double payouts, from the ledger itself: outputs paying each contributor, outpoints spent twice.
    scripts = {parse_address(address).locking_script(): address for *_, address in rows}
    payouts: Counter[str] = Counter()
    spends: Counter[str] = Counter()
    with sqlite3.connect(Path(settings.LEDGER_DIR) / "ledger.sqlite3") as ledger:
        for (raw,) in ledger.execute("SELECT raw FROM txs WHERE kind != 'faucet'"):
            tx = parse_transaction(bytes(raw))
            for tx_input in tx.inputs:
                spends[f"{tx_input.source_txid}:{tx_input.source_output_index}"] += 1
            for output in tx.outputs:
                address = scripts.get(output.locking_script.serialize())
                if address is not None:
                    payouts[address] += 1
    double_payouts = sum(1 for count in payouts.values() if count > 1)
    double_spends = sum(1 for count in spends.values() if count > 1)

    span = (max(finished) - start) if finished else 0.0
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    result = {
        "submissions": len(uploads),
        "concurrency": args.concurrency,
        "workers": args.workers,
        "web_servers": args.web,
        "broadcasters": args.broadcasters,
        "pgbouncer_pool": args.pgbouncer,
        "accepted_by_web_server": [served[index] for index in range(len(pages))],
        "pgbouncer_transactions": (
            stack.pgbouncer_transactions(settings.DATABASES["default"]["NAME"]) if args.pgbouncer else None
        ),
        "accepted": len(accepted),
        "http_errors": len(errors),
        "paid": len(latencies),
        "rejected": rejected,
        "held_or_pending": held,
        "lost": lost,
        "double_payouts": double_payouts,
        "double_spends": double_spends,
        "http_seconds": round(http_seconds, 2),
        "seconds_to_last_broadcast": round(span, 2),
        "paid_per_second": round(len(latencies) / span, 2) if span else None,
        "p50_submit_to_broadcast_s": round(p50, 3) if p50 is not None else None,
        "p95_submit_to_broadcast_s": round(p95, 3) if p95 is not None else None,
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "prefill": filled,
        "first_errors": errors[:3],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        rows_out = [
            ("submissions (concurrency)", f"{result['submissions']} ({args.concurrency} in flight)"),
            ("worker processes", args.workers),
            ("accepted / HTTP errors", f"{result['accepted']} / {result['http_errors']}"),
            ("paid / rejected / held / lost", f"{result['paid']} / {rejected} / {held} / {lost}"),
            ("double payouts / spends", f"{double_payouts} / {double_spends}"),
            ("HTTP phase", f"{result['http_seconds']} s"),
            ("paid per second", result["paid_per_second"]),
            ("p50 submit -> broadcast", f"{result['p50_submit_to_broadcast_s']} s"),
            ("p95 submit -> broadcast", f"{result['p95_submit_to_broadcast_s']} s"),
            ("database", result["database"]),
        ]
        for name, value in rows_out:
            print(f"{name:28} {value}")
        for error in errors[:3]:
            print("error:", error)
    clean = not errors and not lost and not double_payouts and not double_spends
    return 0 if clean and result["paid"] == len(uploads) else 1


if __name__ == "__main__":
    sys.exit(main())
