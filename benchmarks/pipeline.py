"""End-to-end throughput of the bounty pipeline on this machine.

N real MNIST test images (ones the model reads as the bounty's digit) are submitted at once to a bounty with
N slots; two Celery worker processes take each from "received" through classification, duplicate and rate
checks, slot reservation, claim building and verification, to broadcast on the local ledger. Prints claims
per second and the median / p95 time from submit to "broadcast".

    .venv/bin/python benchmarks/pipeline.py [--submissions N] [--workers 2] [--batch K] [--json]

With --batch K the bounty has batch slots of K images (ceil(N / K) of them): the images are claimed K at a
time, and the on-chain bytes per paid image (deploy + claims) are printed too.

Everything runs in a temporary folder: a SQLite database, a private redis-server on a free port, and a fresh
ledger. BENCH_DATABASE_URL runs it on another database instead, which it migrates and fills: give it a
scratch database, never one that matters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from service_stack import Stack, service_stack, wait_for_workers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (concurrency 1 each)")
    parser.add_argument("--digit", type=int, default=7)
    parser.add_argument("--batch", type=int, default=0, help="K images per batch slot (0: single slots)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with service_stack("bounty-bench-") as stack:
        return run(args, stack)


def run(args: argparse.Namespace, stack: Stack) -> int:
    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command

    from bounty import chain, images
    from bounty.classify import reference_model
    from bounty.funding import draft_bounty, fund_and_deploy
    from bounty.models import ModelVersion, SlotKind, Submission, Transaction
    from bounty.queue import enqueue
    from classifier.data import load_mnist
    from contracts.keys import Key

    call_command("migrate", verbosity=0)
    version = ModelVersion.register(Path(settings.MODEL_ARTIFACT), activate=True)
    chain.faucet(chain.operator_address(), 100_000_000)
    if args.batch:
        slots = -(-args.submissions // args.batch)
        batch = {"slot_kind": SlotKind.BATCH, "batch_lanes": args.batch}
        bounty = draft_bounty(version, args.digit, slots=slots, reward=1000, **batch)  # type: ignore[arg-type]
    else:
        bounty = draft_bounty(version, args.digit, slots=args.submissions, reward=1000)
    cost = chain.claim_cost(version, args.digit, bounty.fee_rate, args.batch)
    fund_and_deploy(bounty)

    mnist = load_mnist()
    model = reference_model(version.artifact)
    predicted = np.asarray(model.predict(mnist.x_test.reshape(-1, 784)))
    chosen = np.flatnonzero((predicted == args.digit) & (mnist.y_test == args.digit))[: args.submissions]
    ids = []
    for index in chosen:
        pixels = mnist.x_test[index]
        submission = Submission.objects.create(
            bounty=bounty, pixels=pixels.tobytes(), pixel_sha256=images.pixel_sha256(pixels),
            phash=images.perceptual_hash(pixels), claimed_digit=args.digit,
            payout_address=Key.generate("testnet").address, contributor_ip="127.0.0.1", original="bench.png",
        )  # fmt: skip
        ids.append(submission.pk)

    stack.start_workers(args.workers, "bench")
    try:
        wait_for_workers(args.workers, 60)
    except RuntimeError:
        print("error: the workers did not start; see", stack.work / "services.log", file=sys.stderr)
        return 2
    # Each worker compiles the slot contract on its first claim (about half a second): that is measured.
    from django.utils import timezone

    Submission.objects.filter(pk__in=ids).update(received_at=timezone.now())
    start = time.monotonic()
    for pk in ids:
        enqueue(pk)
    final = {"broadcast", "confirmed", "rejected"}
    while Submission.objects.filter(pk__in=ids).exclude(state__in=final).exists():
        if time.monotonic() - start > 600:
            print("error: submissions did not finish within 10 minutes", file=sys.stderr)
            return 2
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    rows = list(Submission.objects.filter(pk__in=ids).values_list("state", "received_at", "broadcast_at"))
    paid = [(done - received).total_seconds() for state, received, done in rows if state == "broadcast"]
    rejected = sum(1 for state, _, _ in rows if state == "rejected")
    result = {
        "submissions": len(ids),
        "workers": args.workers,
        "paid": len(paid),
        "rejected": rejected,
        "seconds": round(elapsed, 2),
        "claims_per_second": round(len(paid) / elapsed, 2),
        "median_submit_to_broadcast_s": round(statistics.median(paid), 3) if paid else None,
        "p95_submit_to_broadcast_s": round(float(np.percentile(paid, 95)), 3) if paid else None,
        "locking_script_bytes": cost["locking_bytes"],
        "batch": args.batch,
        "claims": Transaction.objects.filter(kind="claim", bounty=bounty).count(),
        # What the chain holds per paid image: the deploy(s) and the claim transactions.
        "chain_bytes_per_paid_image": round(
            sum(tx.size for tx in Transaction.objects.filter(bounty=bounty)) / len(paid)
        )
        if paid
        else None,
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{'submissions queued at once':32} {result['submissions']}")
        print(f"{'worker processes':32} {result['workers']}")
        print(f"{'paid / rejected':32} {result['paid']} / {result['rejected']}")
        print(f"{'wall time':32} {result['seconds']} s")
        print(f"{'claims per second':32} {result['claims_per_second']}")
        print(f"{'median submit -> broadcast':32} {result['median_submit_to_broadcast_s']} s")
        print(f"{'p95 submit -> broadcast':32} {result['p95_submit_to_broadcast_s']} s")
        print(f"{'batch slots of K (0: single)':32} {result['batch']}")
        print(f"{'claim transactions':32} {result['claims']}")
        print(f"{'chain bytes per paid image':32} {result['chain_bytes_per_paid_image']}")
        print(f"{'database':32} {result['database']}")
    return 0 if result["paid"] == len(ids) else 1


if __name__ == "__main__":
    sys.exit(main())
