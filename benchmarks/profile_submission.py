"""Where one submission's time goes: the web request, then each step the worker runs, down to the ledger.

    .venv/bin/python benchmarks/profile_submission.py [--submissions 30] [--prefill N] [--json]

In one process, on the benchmarks' private stack (SQLite in a temporary folder, or BENCH_DATABASE_URL): a
bounty is deployed on a fresh local ledger; each submission is POSTed through Django's test client (the real
view: limits, preprocessing, hashing, storing), then advanced by `pipeline.process` exactly as the Celery
task calls it. Every phase below is a real function of the service wrapped in a timer; a phase's time
includes the phases nested in it. The queue itself is not here (nothing waits in-process): the time it adds
is what `benchmarks/load_http.py` measures beyond these sums. With --prefill N the database first holds N
earlier submissions (benchmarks/prefill.py).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service_stack import service_stack

TIMES: dict[str, list[float]] = defaultdict(list)
QUERIES: dict[str, int] = defaultdict(int)  # SQL statements run inside each phase, nested ones included
ACTIVE: list[str] = []


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        ACTIVE.append(name)
        try:
            return function(*args, **kwargs)
        finally:
            ACTIVE.pop()
            TIMES[name].append(time.perf_counter() - began)

    return wrapper


STATEMENTS: list[tuple[str, str]] = []  # (innermost phase, SQL) of the last submission, for --sql


def count_query(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
    for name in set(ACTIVE):
        QUERIES[name] += 1
    STATEMENTS.append((ACTIVE[-1] if ACTIVE else "-", sql))
    return execute(sql, params, many, context)


def instrument() -> list[tuple[str, int]]:
    """Wrap the service's phases in timers; returns (phase, nesting depth) in the order the table shows."""
    from bounty import chain, forms, images, limits, pipeline, screening, views
    from bounty.models import Slot, Submission

    phases: list[tuple[str, int]] = []

    def wrap(owner: Any, attribute: str, name: str, depth: int) -> None:
        if not hasattr(owner, attribute):  # a phase an earlier commit lacks (this script profiles those too)
            return
        setattr(owner, attribute, timed(name, getattr(owner, attribute)))
        phases.append((name, depth))

    phases.append(("web: POST, whole request", 0))
    wrap(limits, "rate_refusal", "web: rate limit counts", 1)
    wrap(limits, "storage_refusal", "web: stored-originals cap", 1)
    wrap(forms, "preprocess", "web: decode + preprocess image", 1)
    wrap(images, "perceptual_hash", "web: average hash", 1)
    wrap(images, "near_hash", "web: near hash (on save)", 1)
    wrap(views, "enqueue", "web: queue the task (on commit)", 1)
    phases.append(("worker: pipeline.process, whole task", 0))
    for state, attribute, name in (
        (Submission.State.RECEIVED, "check", "worker: check step"),
        (Submission.State.CHECKED, "claim", "worker: claim step"),
        (Submission.State.VERIFIED, "broadcast_claim", "worker: broadcast step"),
    ):
        step = timed(name, getattr(pipeline, attribute))
        setattr(pipeline, attribute, step)
        if hasattr(pipeline, "STEPS"):  # the steps process() reads (earlier commits build them per call)
            pipeline.STEPS[state] = step
        phases.append((name, 1))
        if state == Submission.State.RECEIVED:
            wrap(pipeline, "classify", "check: classify (integer model)", 2)
            second = "second_opinion_of" if hasattr(pipeline, "second_opinion_of") else "ask_second_opinion"
            wrap(pipeline, second, "check: second opinion", 2)
            wrap(pipeline, "screen", "check: screen (duplicates, rate limits)", 2)
            wrap(screening, "near_duplicate", "screen: near-duplicate lookup", 3)
        elif state == Submission.State.CHECKED:
            if hasattr(Slot, "take_free"):
                wrap(Slot, "held_by", "claim: the slot it holds, if any", 2)
                wrap(Slot, "take_free", "claim: reserve a free slot", 2)
            else:
                wrap(Slot, "reserve", "claim: reserve a slot", 2)
            wrap(chain, "build_claim", "claim: build, sign, verify claim (VM)", 2)
            wrap(pipeline, "store_claim", "claim: store the claim", 2)
        else:
            wrap(pipeline, "send", "broadcast: send to the ledger", 2)
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=30)
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument(
        "--slots",
        type=int,
        default=0,
        help="slots of the bounty (at least submissions + 1): the size of its deploy",
    )
    parser.add_argument("--sql", action="store_true", help="print the last submission's SQL by phase")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.submissions <= 500:
        parser.error("--submissions 1..500")
    # The limits stay on (so their counts run, as in service) but far above what one run sends.
    names = ("RATE_LIMIT_PER_IP", "RATE_LIMIT_PER_ADDRESS", "BURST_LIMIT_PER_IP")
    limits = dict.fromkeys(names, "1000000")
    with service_stack("bounty-profile-", DEBUG="1", LOG_LEVEL="WARNING", **limits):
        return run(args)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client
    from PIL import Image
    from prefill import prefill

    from bounty import chain
    from bounty.classify import reference_model
    from bounty.funding import fund_and_deploy
    from bounty.models import Bounty, ModelVersion, Submission
    from classifier.data import load_mnist
    from contracts.keys import Key

    digit = 7
    call_command("migrate", verbosity=0)
    version = ModelVersion.register(Path(settings.MODEL_ARTIFACT), activate=True)
    filled = prefill(args.prefill, version, log=lambda line: print(line, file=sys.stderr))
    chain.faucet(chain.operator_address(), 10_000 * (args.submissions + 10) * 100)
    cost = chain.claim_cost(version, digit, settings.FEE_RATE)
    operator, admin = chain.public_keys()
    bounty = Bounty.objects.create(
        digit=digit, reward=1000, slot_count=max(args.slots, args.submissions + 1), model_version=version,
        fee_rate=settings.FEE_RATE, claim_fee=cost["claim_fee"], operator_pubkey=operator, admin_pubkey=admin,
    )  # fmt: skip
    fund_and_deploy(bounty)
    chain.mine(1)

    mnist = load_mnist()
    predicted = np.asarray(reference_model(version.artifact).predict(mnist.x_test.reshape(-1, 784)))
    chosen = np.flatnonzero((predicted == digit) & (mnist.y_test == digit))[: args.submissions + 1]
    pngs = []
    for index in chosen:
        buffer = io.BytesIO()
        Image.fromarray(255 - mnist.x_test[index]).resize((112, 112)).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())

    phases = instrument()
    from django.db import connection

    from bounty import pipeline

    connection.execute_wrappers.append(count_query)
    client = Client(HTTP_HOST="127.0.0.1")
    page = f"/bounties/{bounty.pk}/"
    states = []
    post = timed("web: POST, whole request", client.post)
    process = timed("worker: pipeline.process, whole task", pipeline.process)
    for number, png in enumerate(pngs):
        STATEMENTS.clear()
        upload = SimpleUploadedFile("digit.png", png, "image/png")
        response = post(page, {"payout_address": Key.generate("testnet").address, "image": upload})
        if response.status_code != 302:
            print(f"error: HTTP {response.status_code}: {response.content[:300]!r}", file=sys.stderr)
            return 2
        submission = Submission.objects.get(public_id=response["Location"].rstrip("/").rsplit("/", 1)[-1])
        states.append(process(submission.pk))
        if number == 0:  # the first one warms caches (the model, the contract): left out of the table
            TIMES.clear()
            QUERIES.clear()

    total = np.median(TIMES["web: POST, whole request"]) + np.median(
        TIMES["worker: pipeline.process, whole task"]
    )
    rows = []
    for name, depth in phases:
        values = TIMES.get(name, [])
        if not values:
            continue
        median = float(np.median(values))
        rows.append(
            {
                "phase": name,
                "depth": depth,
                "calls_per_submission": round(len(values) / args.submissions, 2),
                "median_ms": round(median * 1000, 2),
                "p90_ms": round(float(np.percentile(values, 90)) * 1000, 2),
                "share_of_total": round(median * len(values) / args.submissions / total, 3),
                "queries_per_submission": round(QUERIES.get(name, 0) / args.submissions, 1),
            }
        )
    result = {
        "submissions": args.submissions,
        "prefill": filled,
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "second_opinion": settings.SECOND_OPINION,
        "states": {state: states.count(state) for state in set(states)},
        "median_total_ms": round(float(total) * 1000, 1),
        "phases": rows,
    }
    if args.sql:
        for phase, sql in STATEMENTS:
            print(f"{phase:45} {sql[:160]}")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'phase':52} {'calls':>6} {'median ms':>10} {'p90 ms':>8} {'share':>6} {'SQL':>5}")
    for row in rows:
        name = "  " * row["depth"] + row["phase"]
        print(
            f"{name:52} {row['calls_per_submission']:>6} {row['median_ms']:>10} {row['p90_ms']:>8} "
            f"{row['share_of_total']:>6.1%} {row['queries_per_submission']:>5}"
        )
    print(f"median web + worker per submission: {result['median_total_ms']} ms; states {result['states']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
