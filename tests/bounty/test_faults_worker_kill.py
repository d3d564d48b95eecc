"""A worker killed with SIGKILL at each dangerous step of a claim: after reserving a slot, after storing the
claim, and after broadcasting it but before recording that. A fresh worker and the sweeper finish each one
correctly (real Celery worker subprocesses, the fault tests' Redis database, the local ledger)."""

from __future__ import annotations

import signal
import time

import pytest
from bounty_services import stop_worker
from bounty_testing import NOT_ON_POSTGRES_RERUN, mnist_pixels
from fault_support import (
    FAULT_BROKER_URL,
    FAULT_QUEUE,
    check_invariants,
    deploy_bounty,
    png_of,
    settled,
    start_fault_worker,
    upload,
    wait_until,
)

from bounty import chain
from bounty.celery import app as celery_app
from bounty.faults import FAULT_ENV
from bounty.models import Slot, Submission, Transaction
from contracts.keys import Key

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True), NOT_ON_POSTGRES_RERUN]

# This file's tasks go to a private queue on the fault tests' Redis database.
STEPS = ("slot_reserved", "claim_stored", "broadcast_sent")


def left_behind(submission: Submission, step: str) -> None:
    """What the killed worker left, as each step promises: nothing half-done that cannot be finished."""
    submission.refresh_from_db()
    slot = Slot.objects.get(submission=submission)
    assert slot.state == Slot.State.RESERVED
    if step == "slot_reserved":
        assert (submission.state, submission.claim_tx_id) == (Submission.State.CHECKED, None)
        return
    tx = submission.claim_tx
    assert submission.state == Submission.State.VERIFIED and tx is not None
    assert tx.status == Transaction.Status.STORED
    on_chain = chain.status(tx.txid).state
    assert on_chain == (chain.TxState.MEMPOOL if step == "broadcast_sent" else chain.TxState.UNKNOWN)


def test_the_sweeper_finishes_what_a_killed_worker_left_at_each_step(runtime, settings, fault_broker) -> None:  # type: ignore[no-untyped-def]
    bounty = deploy_bounty(runtime, settings, slots=4)
    killed = []
    for nth, step in enumerate(STEPS):
        worker = start_fault_worker(
            runtime, FAULT_BROKER_URL, FAULT_QUEUE, f"killed-{step}", env={FAULT_ENV: step}
        )
        try:
            submission = upload(bounty, png_of(mnist_pixels(7, nth)), Key.generate("testnet").address)
            assert worker.wait(timeout=120) == -signal.SIGKILL, f"the worker was not killed at {step}"
        finally:
            if worker.poll() is None:
                stop_worker(worker)
        left_behind(submission, step)
        killed.append(submission)
    assert fault_broker.hlen("unacked") >= 1  # the killed tasks were never acknowledged

    time.sleep(1.2)  # STUCK_AFTER is 1 s for the workers of this test
    worker = start_fault_worker(runtime, FAULT_BROKER_URL, FAULT_QUEUE, "restarted")
    try:
        celery_app.send_task("bounty.tasks.sweep", queue=FAULT_QUEUE)
        wait_until(settled, timeout=120, what="the sweeper to finish every submission")
        for submission in killed:
            submission.refresh_from_db()
            assert submission.state == Submission.State.BROADCAST, (submission.state, submission.reason)
            assert Slot.objects.get(submission=submission).state == Slot.State.CLAIMED
            assert chain.status(submission.claim_tx.txid).state == chain.TxState.MEMPOOL  # type: ignore[union-attr]
        assert bounty.slots.filter(state=Slot.State.FREE).count() == 1
        chain.mine(1)
        celery_app.send_task("bounty.tasks.poll_confirmations", queue=FAULT_QUEUE)
        wait_until(
            lambda: Submission.objects.filter(state=Submission.State.CONFIRMED).count() == 3,
            what="confirmations",
        )
    finally:
        stop_worker(worker)
    assert check_invariants(runtime.ledger)["paid"] == 3
