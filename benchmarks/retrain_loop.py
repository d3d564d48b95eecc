"""One season of the learning loop on a private stack: what pay on learn and one retraining do for a domain.

FILE.npz holds `x` (N x 28 x 28 or N x 784 uint8, white digit on black, MNIST-style) and `y` (N labels). The
images are shuffled with a fixed seed and split in two halves. On a private stack (SQLite, a redis-server on
a free port, the local ledger, gunicorn and Celery workers, all in a temporary folder and stopped at the end),
with the committed default model active:

1. one bounty per digit is deployed, with a slot for every first-half image of that digit;
2. contributors submit the first half through the HTTP form (a dark-on-paper PNG each, a fresh address
   each), every image to the bounty of its true digit; the workers pay what the model reads as the digit and
   keep the rest pending;
3. reviewers confirm every pending image in their grid (they are all genuine);
4. one retraining runs as the service runs it (the worker's retrain task: the full training, the service's
   own gate, whose drawn-style criterion here uses the second half), and, when promoted, the bounties'
   slots migrate and the pending images are re-read and paid.

Prints (and with --json, prints as one JSON object) the default and the retrained model's integer accuracy on
the second half (never submitted) and on the 10,000 MNIST test images, how many images were paid before the
retraining, paid on learn, still pending, and the seconds the season took.

    .venv/bin/python benchmarks/retrain_loop.py --domain FILE.npz [--limit N] [--json]

`python -m classifier drawn --out FILE.npz` writes the drawn-style evaluation set.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from service_stack import ROOT, Stack, free_port, service_stack, wait_for_workers

SEED = 16
PAID = ("broadcast", "confirmed")
# Settled: nothing the workers still do moves these without a person or a new model.
SETTLED = ("broadcast", "confirmed", "rejected", "pending", "held", "stalled")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", type=Path, required=True, help="npz with x (N x 28 x 28 uint8) and y")
    parser.add_argument("--limit", type=int, default=0, help="use N images of the file (0: all)")
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP requests in flight at once")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before giving up")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from classifier.drawn import load
    from classifier.errors import ClassifierError

    try:
        x, y = load(args.domain)
    except (ClassifierError, OSError, ValueError) as error:
        parser.error(f"--domain: {error}")
    if args.limit < 0 or len(y) < 20:
        parser.error("--limit must be positive and the domain must hold at least 20 images")
    order = np.random.default_rng(SEED).permutation(len(y))[: args.limit or len(y)]
    x, y = x[order], y[order]
    half = len(y) // 2
    settings = {"DEBUG": "1", "LOG_LEVEL": "WARNING", "BURST_LIMIT_PER_IP": "0"}
    with service_stack("bounty-retrain-loop-", **settings) as stack:
        try:
            result = run(args, stack, (x[:half], y[:half]), (x[half:], y[half:]))
        except RuntimeError as error:
            print(f"error: {error}; see {stack.work / 'services.log'}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result.items():
            print(f"{name:34} {value}")
    return 0 if result["retraining"] == "promoted" else 1


def run(
    args: argparse.Namespace, stack: Stack, submitted: tuple[np.ndarray, np.ndarray],
    heldback: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:  # fmt: skip
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from bounty import chain
    from bounty.classify import reference_model
    from bounty.funding import fund_and_deploy
    from bounty.models import Bounty, ModelVersion, Submission
    from bounty.retraining.dataset import mnist

    started = time.monotonic()
    # The gate's drawn-style criterion judges the candidate on the half never submitted (the default set would
    # overlap the images it was trained on when the domain is the drawn-style set itself).
    heldback_file = stack.work / "heldback.npz"
    np.savez_compressed(heldback_file, x=heldback[0], y=heldback[1])
    os.environ["RETRAIN_DRAWN_SET"] = str(heldback_file)
    call_command("migrate", verbosity=0)
    version = ModelVersion.register(Path(settings.MODEL_ARTIFACT), activate=True)
    counts = Counter(int(label) for label in submitted[1])
    chain.faucet(chain.operator_address(), 12_000 * (len(submitted[1]) + 100))
    bounties = {}
    operator, admin = chain.public_keys()
    for digit in range(10):
        if not counts[digit]:
            continue
        cost = chain.claim_cost(version, digit, settings.FEE_RATE)
        bounty = Bounty.objects.create(
            digit=digit, reward=1000, slot_count=counts[digit], model_version=version,
            fee_rate=settings.FEE_RATE, claim_fee=cost["claim_fee"], operator_pubkey=operator,
            admin_pubkey=admin,
        )  # fmt: skip
        fund_and_deploy(bounty)
        bounties[digit] = bounty
    chain.mine(1)
    deployed = time.monotonic()

    http_port = free_port()
    start_services(args, stack, http_port)
    accepted, errors = submit_all(args, http_port, bounties, submitted)
    mine = Submission.objects.filter(public_id__in=accepted)
    wait(lambda: not mine.exclude(state__in=SETTLED).exists(), args.timeout, "the submissions to settle")
    submitted_done = time.monotonic()
    before = Counter(mine.values_list("state", flat=True))
    reasons = Counter(mine.filter(state="rejected").values_list("reason", flat=True))

    confirmed = review(list(mine.filter(state="pending").values_list("pk", flat=True)))

    from bounty.celery import app

    app.send_task("bounty.retraining.tasks.retrain", kwargs={"trigger": "benchmark", "force": True})
    from bounty.retraining.models import Redeployment, RetrainingRun

    # A redelivered task (a training longer than the broker's visibility timeout) finds the lock held and is
    # recorded as skipped: the run that counts is the one that trained.
    ran = RetrainingRun.objects.filter(trigger="benchmark").exclude(state__in=("running", "skipped"))
    wait(ran.exists, args.timeout, "the retraining")
    retrain = ran.get()
    trained = time.monotonic()
    if retrain.state == RetrainingRun.State.PROMOTED:
        # Beat is not running here: ask the worker to resume the redeployment until it is done.
        def moved() -> bool:
            if Redeployment.objects.filter(state="running").exists():
                app.send_task("bounty.retraining.tasks.resume_redeployments")
                time.sleep(2)
                return False
            return True

        wait(moved, args.timeout, "the slots to move to the promoted model")
        stepped = set(Bounty.objects.filter(model_version=retrain.candidate).values_list("pk", flat=True))

        def reread() -> bool:
            learning = ModelVersion.objects.get(pk=retrain.candidate_id).learning or {}
            return stepped <= {int(pk) for pk in learning.get("bounties", {})}

        wait(reread, args.timeout, "the pending images to be re-read")
        wait(lambda: not mine.exclude(state__in=SETTLED).exists(), args.timeout, "the paid-on-learn claims")
    after = Counter(mine.values_list("state", flat=True))
    paid_on_learn = mine.filter(state__in=PAID, paid_by_version__isnull=False).count()

    old_model = reference_model(version.artifact)
    new_model = reference_model(retrain.candidate.artifact) if retrain.candidate else old_model
    data = mnist()
    result = {
        "domain": str(args.domain),
        "domain_images": len(submitted[1]) + len(heldback[1]),
        "submitted": len(submitted[1]),
        "accepted_over_http": len(accepted),
        "http_errors": len(errors),
        "domain_accuracy_before": accuracy(old_model, *heldback),
        "domain_accuracy_after": accuracy(new_model, *heldback),
        "mnist_accuracy_before": accuracy(old_model, data.x_test, data.y_test),
        "mnist_accuracy_after": accuracy(new_model, data.x_test, data.y_test),
        "paid_before_retrain": sum(before[s] for s in PAID),
        "pending_before_retrain": before["pending"],
        "held_before_retrain": before["held"],
        "rejected_before_retrain": dict(reasons),
        "confirmed_by_reviewers": confirmed,
        "retraining": retrain.state,
        "retraining_reason": retrain.reason,
        "retraining_seconds": retrain.seconds,
        "paid_on_learn": paid_on_learn,
        "still_pending": after["pending"],
        "paid_total": sum(after[s] for s in PAID),
        "seconds_deploy": round(deployed - started, 1),
        "seconds_submissions": round(submitted_done - deployed, 1),
        "seconds_retrain_to_paid": round(time.monotonic() - trained, 1),
        "seconds": round(time.monotonic() - started, 1),
        "first_errors": errors[:3],
    }
    return result


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.mean(np.asarray(model.predict(x.reshape(-1, 784))) == y)), 4)


def start_services(args: argparse.Namespace, stack: Stack, http_port: int) -> None:
    stack.start_workers(args.workers, "loop")
    stack.start_web(http_port)
    wait_for_workers(args.workers, 120)


def submit_all(
    args: argparse.Namespace, http_port: int, bounties: dict, submitted: tuple[np.ndarray, np.ndarray]
) -> tuple[list[str], list[str]]:
    """Each image through the web form of its true digit's bounty, as a contributor's PNG upload."""
    import requests
    from PIL import Image

    from contracts.keys import Key

    base = f"http://127.0.0.1:{http_port}"
    local = threading.local()
    accepted: list[str] = []
    errors: list[str] = []

    def submit(item: tuple[np.ndarray, int]) -> None:
        pixels, label = item
        page = f"{base}/bounties/{bounties[label].pk}/"
        buffer = io.BytesIO()
        Image.fromarray(255 - pixels).resize((112, 112)).save(buffer, format="PNG")  # a dark digit on paper
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.get(page, timeout=30)
        try:
            response = session.post(
                page,
                data={
                    "payout_address": Key.generate("testnet").address,
                    "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
                },
                files={"image": ("digit.png", buffer.getvalue(), "image/png")},
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
        accepted.append(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])

    items = [(submitted[0][i], int(submitted[1][i])) for i in range(len(submitted[1]))]
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        list(pool.map(submit, items))
    return accepted, errors


def review(ids: list[int]) -> int:
    """A reviewer confirms every pending image through the grid's bulk action (each is a genuine digit)."""
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from bounty.models import Submission

    reviewer = User.objects.create_user("benchmark-reviewer", is_staff=True)
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(reviewer)
    for first in range(0, len(ids), 500):
        response = client.post(
            "/admin/bounty/reviewitem/pending/", {"bulk": "confirm", "ids": ids[first : first + 500]}
        )
        if response.status_code != 302:
            raise RuntimeError(f"the reviewers' grid answered {response.status_code}")
    return Submission.objects.filter(pk__in=ids, review_approved=True).count()


def wait(done: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
