"""Verification and broadcast on queues of their own, each served by its own worker process (distinct node
names), as deploy/compose.yaml runs them: the broadcast worker is SIGKILLed right after it sends a claim
and before it records that, the verification worker is SIGKILLed while it still has work, and fresh workers
and the sweeper finish everything with every invariant held (real Celery worker subprocesses, the fault
tests' Redis database, the local ledger)."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis
from bounty_services import stop_worker
from bounty_testing import NOT_ON_POSTGRES_RERUN, mnist_pixels
from fault_support import (
    FAULT_BROKER_URL,
    check_invariants,
    deploy_bounty,
    forget_queue,
    png_of,
    private_queue,
    settled,
    start_fault_worker,
    upload,
    wait_until,
)

from bounty import chain
from bounty.celery import app as celery_app
from bounty.faults import FAULT_ENV
from bounty.models import Slot, Submission
from contracts.keys import Key

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True), NOT_ON_POSTGRES_RERUN]

VERIFY_QUEUE = f"bounty-scale-verify-{os.getpid()}"
BROADCAST_QUEUE = f"bounty-scale-broadcast-{os.getpid()}"
QUEUES = {"CELERY_VERIFY_QUEUE": VERIFY_QUEUE, "CELERY_BROADCAST_QUEUE": BROADCAST_QUEUE}
SUBMISSIONS = 6


@pytest.fixture
def queues():  # type: ignore[no-untyped-def]
    """The test's own tasks (the form's, the sweep) go to the verification queue; both queues and what
    killed workers left unacknowledged in them are dropped before and after."""
    connection = redis.Redis.from_url(FAULT_BROKER_URL)
    forget_queue(connection, BROADCAST_QUEUE)
    with private_queue(VERIFY_QUEUE) as broker:
        yield broker
    forget_queue(connection, BROADCAST_QUEUE)


def worker(runtime, queue: str, name: str, **env: str):  # type: ignore[no-untyped-def]
    return start_fault_worker(runtime, FAULT_BROKER_URL, queue, name, env={**QUEUES, **env})


def received_tasks(runtime, name: str) -> set[str]:  # type: ignore[no-untyped-def]
    log = (runtime.base / f"{name}.log").read_text(errors="replace")
    return {task for task in ("process_submission", "broadcast_submission") if f"bounty.tasks.{task}[" in log}


def test_separate_queues_survive_a_killed_worker_on_each(runtime, settings, queues) -> None:  # type: ignore[no-untyped-def]
    bounty = deploy_bounty(runtime, settings, slots=SUBMISSIONS)
    verifier = worker(runtime, VERIFY_QUEUE, "verifier")
    broadcaster = worker(runtime, BROADCAST_QUEUE, "broadcaster", **{FAULT_ENV: "broadcast_sent"})
    started = [verifier, broadcaster]
    try:
        submissions = [
            upload(bounty, png_of(mnist_pixels(7, nth)), Key.generate("testnet").address)
            for nth in range(SUBMISSIONS)
        ]
        # The broadcaster dies at its first claim, sent to the chain but not recorded as sent.
        assert broadcaster.wait(timeout=180) == -signal.SIGKILL, "the broadcast worker was not killed"
        # The verifier meanwhile goes on: it is killed now, whatever it is doing.
        wait_until(
            lambda: Submission.objects.filter(state=Submission.State.VERIFIED).count() >= 2,
            timeout=180,
            what="a second verified claim waiting for the dead broadcaster",
        )
        os.kill(verifier.pid, signal.SIGKILL)
        assert verifier.wait(timeout=30) == -signal.SIGKILL
        assert not Submission.objects.filter(state=Submission.State.BROADCAST).exists()

        started.append(worker(runtime, VERIFY_QUEUE, "verifier-b"))
        started.append(worker(runtime, BROADCAST_QUEUE, "broadcaster-b"))
        time.sleep(1.2)  # STUCK_AFTER is 1 s for the workers: what the killed ones left counts as stuck
        celery_app.send_task("bounty.tasks.sweep", queue=VERIFY_QUEUE)
        wait_until(settled, timeout=240, what="the sweeper and the new workers to finish every submission")
    finally:
        for process in started:
            if process.poll() is None:
                stop_worker(process)

    for submission in submissions:
        submission.refresh_from_db()
        assert submission.state == Submission.State.BROADCAST, (
            submission.pk,
            submission.state,
            submission.reason,
        )
        assert Slot.objects.get(submission=submission).state == Slot.State.CLAIMED
        assert chain.status(submission.claim_tx.txid).state == chain.TxState.MEMPOOL  # type: ignore[union-attr]
    assert check_invariants(runtime.ledger)["paid"] == SUBMISSIONS
    # Each queue's work ran on its own workers only.
    assert received_tasks(runtime, "verifier-b") == {"process_submission"}
    assert received_tasks(runtime, "broadcaster-b") == {"broadcast_submission"}
    assert received_tasks(runtime, "broadcaster") == {"broadcast_submission"}
