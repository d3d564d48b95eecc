"""Two bounties and several workers claiming at once: two Celery worker subprocesses of two processes each
take a burst of submissions for both bounties, more than there are slots. No slot is reserved twice, no
double spend reaches the ledger, every submission ends paid or told the bounty is exhausted."""

from __future__ import annotations

import pytest
from bounty_services import stop_worker
from bounty_testing import mnist_pixels
from fault_support import (
    FAULT_BROKER_URL,
    FAULT_QUEUE,
    check_invariants,
    deploy_bounty,
    png_of,
    private_queue,
    settled,
    start_fault_worker,
    upload,
    wait_until,
)

from bounty.models import Reason, Slot, Submission
from contracts.keys import Key

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

QUEUE = f"{FAULT_QUEUE}-race"


def test_several_workers_never_reserve_a_slot_twice(runtime, settings) -> None:  # type: ignore[no-untyped-def]
    with private_queue(QUEUE):
        first = deploy_bounty(runtime, settings, digit=7, slots=3)
        second = deploy_bounty(runtime, settings, digit=7, slots=2)
        workers = [
            start_fault_worker(runtime, FAULT_BROKER_URL, QUEUE, f"race{n}", concurrency=2) for n in range(2)
        ]
        try:
            # Queued before the workers are up, so all four worker processes start on the burst together.
            for nth in range(8):
                bounty = first if nth % 2 == 0 else second
                upload(bounty, png_of(mnist_pixels(7, nth)), Key.generate("testnet").address)
            wait_until(settled, timeout=150, what="every submission to settle")
        finally:
            for worker in workers:
                stop_worker(worker)
    paid = Submission.objects.filter(state="broadcast")
    assert paid.count() == 5  # exactly the slots there were
    assert set(Submission.objects.filter(state="rejected").values_list("reason", flat=True)) == {
        Reason.EXHAUSTED
    }
    holders = list(Slot.objects.exclude(submission=None).values_list("submission_id", flat=True))
    assert len(holders) == len(set(holders)) == 5
    assert Slot.objects.filter(state="claimed").count() == 5
    assert check_invariants(runtime.ledger)["paid"] == 5
