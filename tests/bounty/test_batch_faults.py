"""The fault tests on batch bounties: several workers taking batches at once never put a submission or a slot
in two batches, and batch claims through a ledger answering as ARC does under stress (409s, claims seen then
rejected, malleated copies in the mempool and mined first) pay every accepted image exactly once. Real
Celery worker subprocesses on the fault tests' Redis database, the local ledger, the invariant checker; every
transaction the ledger accepted is re-verified with bitcoinx."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from bounty_services import Runtime, stop_worker
from bounty_testing import NOT_ON_POSTGRES_RERUN, mnist_pixels, model_artifact
from fault_support import (
    FAULT_BROKER_URL,
    FAULT_QUEUE,
    all_confirmed,
    check_invariants,
    png_of,
    private_queue,
    settled,
    start_fault_worker,
    upload,
    wait_until,
)

from bounty import chain
from bounty.funding import draft_bounty, fund_and_deploy
from bounty.models import Bounty, ModelVersion, Reason, Slot, SlotKind, Submission, Transaction
from contracts.keys import Key
from contracts.ledger import LocalLedger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contracts"))
from ledger_helpers import reverify_ledger_with_bitcoinx

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

LANES = 4
QUEUE = f"{FAULT_QUEUE}-batch-race"


@pytest.fixture
def runtime(tmp_path, keys_dir) -> Runtime:  # type: ignore[no-untyped-def]
    """A ledger of each test's own, so the invariant checker sees only that test's transactions."""
    return Runtime(tmp_path, keys_dir)


def batch_bounty(runtime, settings, slots: int) -> Bounty:  # type: ignore[no-untyped-def]
    settings.LEDGER_DIR, settings.MEDIA_ROOT = runtime.ledger, runtime.media
    settings.BURST_LIMIT_PER_IP = 100
    chain.reset()
    version = ModelVersion.register(model_artifact(), name="batch-faults", activate=True)
    chain.faucet(chain.operator_address(), 2_000_000)
    bounty = draft_bounty(version, 7, slots=slots, reward=1000, slot_kind=SlotKind.BATCH, batch_lanes=LANES)
    fund_and_deploy(bounty)
    return bounty


def ledger() -> LocalLedger:
    backend = chain.backend()
    assert isinstance(backend, LocalLedger)
    return backend


def test_several_workers_never_put_a_submission_or_slot_in_two_batches(runtime, settings) -> None:  # type: ignore[no-untyped-def]
    with private_queue(QUEUE):
        bounty = batch_bounty(runtime, settings, slots=2)
        # A long maximum wait: only full batches are claimed, so twelve images make two paid batches and
        # four that find no slot left.
        env = {"BATCH_MAX_WAIT": "300"}
        # Queued before the workers are up, so all four worker processes start on the burst together.
        for nth in range(12):
            upload(bounty, png_of(mnist_pixels(7, nth)), Key.generate("testnet").address)
        workers = [
            start_fault_worker(runtime, FAULT_BROKER_URL, QUEUE, f"batch-race{n}", env=env, concurrency=2)
            for n in range(2)
        ]
        try:
            try:
                wait_until(settled, timeout=180, what="every submission to settle")
            except AssertionError as error:
                raise AssertionError(f"{error}; left: {left()}") from None
        finally:
            for worker in workers:
                stop_worker(worker)
    paid = Submission.objects.filter(state="broadcast")
    assert paid.count() == 2 * LANES
    rejected = Submission.objects.filter(state="rejected")
    assert set(rejected.values_list("reason", flat=True)) == {Reason.EXHAUSTED}
    claims = Transaction.objects.filter(kind="claim")
    assert claims.count() == 2, "one claim per batch slot, none built twice"
    assert sorted(Counter(paid.values_list("claim_tx_id", flat=True)).values()) == [LANES, LANES]
    slots = Slot.objects.filter(bounty=bounty)
    assert {(s.state, s.spent_by_id is not None) for s in slots} == {("claimed", True)}
    assert {s.spent_by_id for s in slots} == set(claims.values_list("pk", flat=True))
    assert check_invariants(runtime.ledger)["paid"] == 2 * LANES
    assert reverify_ledger_with_bitcoinx(ledger()) == 3  # the deploy and the two claims


def left() -> list[tuple]:
    """What is not final yet, for the message of a test that times out."""
    rows = Submission.objects.exclude(state__in=("confirmed", "rejected"))
    fields = ("pk", "state", "batch_slot_id", "claim_tx__txid", "claim_tx__status", "reason_detail")
    return list(rows.values_list(*fields))


@NOT_ON_POSTGRES_RERUN
def test_every_batch_member_is_paid_exactly_once_through_arc_chaos(runtime, settings, fault_broker) -> None:  # type: ignore[no-untyped-def]
    images = 12
    bounty = batch_bounty(runtime, settings, slots=6)
    settings.BATCH_MAX_WAIT = 5  # the sweeper rounds of this process claim what is left, padded
    chaos = ledger().chaos
    # Each fault once, in this order, then 409s at random. The ledger answers a claim it rejected before
    # with that rejection whenever a fault is drawn for the copy sent again, so refusals at random would
    # stall a rebuilt batch after CLAIM_MAX_ATTEMPTS for the chaos plan's sake, not the service's.
    chaos.configure(queue=["malleate", "busy", "malleate_mined", "reject_later"], rates={"busy": 0.2})
    worker = start_fault_worker(
        runtime, FAULT_BROKER_URL, FAULT_QUEUE, "batch-chaos", env={"BATCH_MAX_WAIT": "5"}
    )
    payees = [Key.generate("testnet").address for _ in range(images)]
    try:
        submissions = [
            upload(bounty, png_of(mnist_pixels(7, n)), address) for n, address in enumerate(payees)
        ]
        try:
            wait_until(all_confirmed, timeout=300, what="every batch claim confirmed through the chaos")
        except AssertionError as error:
            raise AssertionError(f"{error}; left: {left()}") from None
    finally:
        stop_worker(worker)
        chaos.clear()
    counts = check_invariants(runtime.ledger)
    done = Submission.objects.filter(pk__in=[s.pk for s in submissions])
    accepted = [s for s in done if s.state == "confirmed"]
    assert counts["paid"] == len(accepted) >= images - 1  # an MNIST 7 the network misreads is rejected
    for submission in accepted:
        received = sum(u.satoshis for u in ledger().utxos(submission.payout_address))
        assert received == bounty.reward, (submission.pk, received)
    hit = (
        ledger().summary()["conflicts"],
        Transaction.objects.filter(kind="claim", built_here=False).count(),
        Submission.objects.filter(payout_attempts__gte=1).count(),
    )
    assert any(hit), f"the chaos plan really contested or refused a batch claim: {hit}"
    assert reverify_ledger_with_bitcoinx(ledger()) >= 2
