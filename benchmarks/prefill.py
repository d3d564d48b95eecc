"""Fill the database with N earlier submissions, as a season of collecting would leave them.

Each row is a distinct 28x28 image (an MNIST training digit, moved by up to two pixels each way and, past
the 25 moves, touched by seeded noise: the load's images come from the test set, so none of them is a
duplicate of these), with its sha256, its average hash and its near hash computed as the service computes
them; a mix of states (confirmed 60%, rejected 30% with their reasons, broadcast 5%, held 5%), of payout
addresses (2,000 of them) and of client networks, received over the 90 days before the rate-limit window.
They belong to an earlier bounty that is closed, so they take no slot of the bounty under load.

Rows go in with bulk_create, BATCH at a time, in one transaction per batch.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import numpy as np

BATCH = 2000
SEED = 15
STATES = (("confirmed", "", 0.60), ("rejected", "wrong_digit", 0.20), ("rejected", "duplicate", 0.10))
STATES += (("broadcast", "", 0.05), ("held", "", 0.05))
SHIFTS = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]


def variants(train: np.ndarray, start: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Images start..start+count of the endless sequence: train digit i % len(train), variant i // len."""
    out = np.empty((count, 28, 28), dtype=np.uint8)
    for offset in range(count):
        number = start + offset
        base, variant = train[number % len(train)], number // len(train)
        dy, dx = SHIFTS[variant % len(SHIFTS)]
        image = np.roll(base, (dy, dx), axis=(0, 1))
        if variant >= len(SHIFTS):
            noise = rng.integers(-12, 13, image.shape)
            image = np.clip(image.astype(np.int16) + noise * (image > 0), 0, 255).astype(np.uint8)
        out[offset] = image
    return out


def prefill(count: int, model_version: Any, *, log: Any = print) -> dict[str, float]:
    """Insert `count` earlier submissions; returns how long it took and the rows per second."""
    from django.db import transaction
    from django.utils import timezone

    from bounty import images
    from bounty.models import Bounty, Submission
    from classifier.data import load_mnist
    from contracts.keys import Key

    if count <= 0:
        return {"rows": 0, "seconds": 0.0, "rows_per_second": 0.0}
    began = time.monotonic()
    rng = np.random.default_rng(SEED)
    train = load_mnist().x_train
    earlier = Bounty.objects.create(
        digit=3, reward=1000, slot_count=0, model_version=model_version, fee_rate=100, claim_fee=200,
        state=Bounty.State.CLOSED,
    )  # fmt: skip
    addresses = [Key.generate("testnet").address for _ in range(2000)]
    kinds = rng.choice(len(STATES), size=count, p=[share for *_, share in STATES])
    now = timezone.now()
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        batch = variants(train, start, size, rng)
        near = images.near_hashes(batch) if hasattr(images, "near_hashes") else [0] * size
        ages = rng.integers(2 * 3600, 90 * 86400, size)
        rows = []
        for offset in range(size):
            pixels = batch[offset]
            state, reason, _ = STATES[kinds[start + offset]]
            received = now - timedelta(seconds=int(ages[offset]))
            rows.append(
                Submission(
                    bounty=earlier,
                    pixels=pixels.tobytes(),
                    pixel_sha256=images.pixel_sha256(pixels),
                    phash=images.perceptual_hash(pixels),
                    claimed_digit=3,
                    predicted_digit=3 if reason != "wrong_digit" else 5,
                    payout_address=addresses[int(rng.integers(len(addresses)))],
                    contributor_ip=f"198.51.{int(rng.integers(256))}.{int(rng.integers(256))}",
                    original=f"originals/prefill/{start + offset}.png",
                    original_bytes=300,
                    state=state,
                    reason=reason,
                    received_at=received,
                    updated=received,
                    checked_at=received if state != "rejected" else None,
                    rejected_at=received if state == "rejected" else None,
                )
            )
            rows[-1].client_net = rows[-1].contributor_ip
            if hasattr(rows[-1], "set_near_hash"):  # earlier commits, profiled for comparison, lack it
                rows[-1].set_near_hash(near[offset])
        with transaction.atomic():
            Submission.objects.bulk_create(rows, batch_size=BATCH)
        done = start + size
        if done % (BATCH * 50) == 0 or done == count:
            elapsed = time.monotonic() - began
            log(f"prefill: {done:,} of {count:,} rows, {elapsed:.0f} s")
    # A table that grew to this size in service has current statistics (autovacuum analyses it as it grows);
    # one filled in minutes does not yet, and the planner would judge the first queries by the empty table's.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bounty_submission")
    seconds = time.monotonic() - began
    return {"rows": count, "seconds": round(seconds, 1), "rows_per_second": round(count / seconds, 1)}
