"""What a Celery worker computes once per process, done before it takes its first task.

A claim needs its bounty's compiled contract (about 0.1 s to compile) and the locking script as the native
VM takes it; the check step needs the second opinion's weights; a bounty that keeps the images its model
reads as another digit needs MNIST's training images as floats for the nearest-neighbour label (about 0.5 s).
Each is cached per process, so without this the first submissions a worker takes wait for them: under
`benchmarks/load_http.py`'s burst that was a second or more of one worker's time while the queue grew. It
also counts the shared tally of stored originals if no one has (bounty.storage_tally), so that no web request
scans the submissions for it.

`warm_up` runs in Celery's `worker_init` (bounty.tasks), in the worker's main process before its pool forks,
so every pool process, and one started again after a crash, begins with these already in memory. Nothing
here may stop a worker from starting: a failure is logged and the task that needs the value computes it.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db.models import QuerySet

from bounty import chain, storage_tally
from bounty.classify import reference_model
from bounty.models import Bounty
from bounty.retraining import dataset
from classifier.second_opinion.model import load_cached

log = logging.getLogger(__name__)

# The most contracts compiled ahead (chain.slot_contract keeps 64): one per model, digit and key pair.
MOST_CONTRACTS = 32


def warm_up() -> dict[str, tuple[int, float]]:
    """Fill the per-process caches the hot path reads; returns, for each part, how many things it made
    ready (0 when none was needed or it failed) and the seconds it took."""
    done: dict[str, tuple[int, float]] = {}
    for name, part in (
        ("contracts", _contracts),
        ("second opinion", _second_opinion),
        ("nearest neighbours", _neighbours),
        ("stored originals", _stored_originals),
    ):
        began, count = time.perf_counter(), 0
        try:
            count = part()
        except Exception as error:  # a cold cache costs the first task time; a failed start costs the service
            log.warning("warm-up of the %s failed (the first task computes it): %s", name, error)
        done[name] = (count, round(time.perf_counter() - began, 3))
    return done


def describe(done: dict[str, tuple[int, float]]) -> str:
    """warm_up's answer for the log: "contracts 2 (0.25 s), second opinion 1 (0.00 s), ..."."""
    return ", ".join(f"{name} {count} ({seconds:.2f} s)" for name, (count, seconds) in done.items())


def open_bounties() -> QuerySet[Bounty]:
    return Bounty.objects.filter(state=Bounty.State.ACTIVE, paused=False).select_related("model_version")


def _contracts() -> int:
    seen: set[tuple[str, int, int, str, str]] = set()
    for bounty in open_bounties().order_by("-created"):
        key = (
            bounty.model_version.artifact,
            bounty.digit,
            bounty.lanes,
            bounty.operator_pubkey,
            bounty.admin_pubkey,
        )
        if key in seen or not bounty.operator_pubkey:
            continue
        if len(seen) == MOST_CONTRACTS:
            break
        seen.add(key)
        chain.prepare_contract(bounty)
        reference_model(bounty.model_version.artifact)
    return len(seen)


def _second_opinion() -> int:
    if not settings.SECOND_OPINION:
        return 0
    load_cached(str(settings.SECOND_OPINION_MODEL))
    return 1


def _neighbours() -> int:
    """Only while an open bounty keeps the images its model reads as another digit (pay on learn)."""
    if not open_bounties().filter(pending_days__gt=0).exists():
        return 0
    dataset.mnist_train_as_float()
    return 1


def _stored_originals() -> int:
    """The shared tally the web's upload cap reads (bounty.storage_tally), counted if no one has yet, so no
    web request scans the table for it."""
    storage_tally.recount(only_if_missing=True)
    return 1
