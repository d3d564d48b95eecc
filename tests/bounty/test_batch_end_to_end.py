"""A K = 4 batch bounty end to end through the real thing: the web form, a Celery worker subprocess on the
fault tests' Redis database (a private queue), the local ledger shared with the worker. Four images are paid
by one claim with four payees; a lone image is claimed after the (shortened) maximum wait, padded, its
padded lanes' rewards returned to the operator wallet; a worker killed while a batch is built loses nobody.
Every transaction the ledger accepts is re-verified with bitcoinx and the fault invariants are checked."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from bounty_services import Runtime, stop_worker
from bounty_testing import NOT_ON_POSTGRES_RERUN, mnist_pixels, model_artifact
from django.test import Client
from fault_support import (
    FAULT_BROKER_URL,
    FAULT_QUEUE,
    check_invariants,
    png_of,
    settled,
    start_fault_worker,
    upload,
    wait_until,
)

from bounty import chain
from bounty.celery import app as celery_app
from bounty.faults import FAULT_ENV
from bounty.funding import draft_bounty, fund_and_deploy
from bounty.models import Bounty, ModelVersion, Slot, SlotKind, Submission, Transaction
from contracts.address import parse_address
from contracts.keys import Key
from contracts.ledger import LocalLedger
from contracts.txverify import parse_transaction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contracts"))
from ledger_helpers import reverify_ledger_with_bitcoinx

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

LANES = 4
MAX_WAIT = 3  # seconds: the shortened BATCH_MAX_WAIT of the lone image's test
# The other tests' workers wait long enough that four uploads always make one full batch, however loaded
# the machine is.
FULL_WAIT = 120


@pytest.fixture
def runtime(tmp_path, keys_dir) -> Runtime:  # type: ignore[no-untyped-def]
    """A ledger of this test's own, so the invariant checker sees only this test's transactions."""
    return Runtime(tmp_path, keys_dir)


@pytest.fixture
def batch_bounty(runtime: Runtime, settings) -> Bounty:  # type: ignore[no-untyped-def]
    settings.LEDGER_DIR, settings.MEDIA_ROOT = runtime.ledger, runtime.media
    settings.BATCH_MAX_WAIT, settings.BURST_LIMIT_PER_IP = MAX_WAIT, 100
    chain.reset()
    version = ModelVersion.register(model_artifact(), name="batch-e2e", activate=True)
    chain.faucet(chain.operator_address(), 1_000_000)
    bounty = draft_bounty(version, 7, slots=2, reward=1000, slot_kind=SlotKind.BATCH, batch_lanes=LANES)
    fund_and_deploy(bounty)
    return bounty


def worker(runtime: Runtime, name: str, wait: int = FULL_WAIT, **env: str):  # type: ignore[no-untyped-def]
    return start_fault_worker(
        runtime, FAULT_BROKER_URL, FAULT_QUEUE, name, env={"BATCH_MAX_WAIT": str(wait), **env}
    )


def ledger() -> LocalLedger:
    backend = chain.backend()
    assert isinstance(backend, LocalLedger)
    return backend


def outputs_of(tx: Transaction) -> list[tuple[int, bytes]]:
    raw = chain.backend().get_transaction(tx.txid)
    return [(o.satoshis, o.locking_script.serialize()) for o in parse_transaction(raw).outputs]


def script_of(address: str) -> bytes:
    return parse_address(address).locking_script()


def submit(bounty: Bounty, nths: range) -> list[Submission]:
    return [upload(bounty, png_of(mnist_pixels(7, n)), Key.generate("testnet").address) for n in nths]


def states(submissions: list[Submission]) -> set[str]:
    return set(Submission.objects.filter(pk__in=[s.pk for s in submissions]).values_list("state", flat=True))


def test_four_images_are_paid_by_one_claim_with_four_payees(runtime, batch_bounty, fault_broker) -> None:  # type: ignore[no-untyped-def]
    process = worker(runtime, "batch-e2e")
    try:
        members = submit(batch_bounty, range(4))
        wait_until(lambda: states(members) == {"broadcast"}, timeout=120, what="the batch to be paid")
    finally:
        stop_worker(process)
    members = [Submission.objects.get(pk=s.pk) for s in members]
    [claim] = Transaction.objects.filter(kind="claim")
    assert {s.claim_tx_id for s in members} == {claim.pk}
    outputs = outputs_of(claim)
    for member in members:
        assert outputs[member.claim_output] == (1000, script_of(member.payout_address))  # type: ignore[index]
    assert len(outputs) <= LANES + 1  # at most the change of the reserved fee besides the four payees
    slot = Slot.objects.get(spent_by=claim)
    assert (slot.state, slot.lanes) == ("claimed", LANES)
    assert check_invariants(runtime.ledger)["paid"] == 4
    assert reverify_ledger_with_bitcoinx(ledger()) == 2  # the deploy and the one claim


def test_a_lone_image_is_claimed_padded_after_the_maximum_wait(runtime, batch_bounty, fault_broker) -> None:  # type: ignore[no-untyped-def]
    process = worker(runtime, "batch-lone", wait=MAX_WAIT)
    try:
        [lone] = submit(batch_bounty, range(1))
        wait_until(lambda: states([lone]) == {"checked"}, timeout=60, what="the check")
        started = time.monotonic()
        page = Client().get(f"/submissions/{lone.public_id}/status.json").json()
        assert "waiting for 3 more images or at most" in page["batch_wait"], page
        wait_until(lambda: states([lone]) == {"broadcast"}, timeout=60, what="the padded batch")
        waited = time.monotonic() - started
    finally:
        stop_worker(process)
    lone.refresh_from_db()
    assert waited <= MAX_WAIT + 30, waited  # claimed by the worker's own delayed look, not a sweep
    outputs = outputs_of(lone.claim_tx)  # type: ignore[arg-type]
    assert outputs[0] == (1000, script_of(lone.payout_address))
    # The three padded lanes' rewards (and the unneeded fee) go back to the operator wallet.
    assert len(outputs) == 2 and outputs[1][1] == script_of(chain.operator_address())
    assert outputs[1][0] >= 3 * 1000
    assert check_invariants(runtime.ledger)["paid"] == 1
    assert reverify_ledger_with_bitcoinx(ledger()) == 2


@NOT_ON_POSTGRES_RERUN
@pytest.mark.parametrize("step", ["slot_reserved", "claim_stored"])
def test_a_worker_killed_while_a_batch_is_built_loses_nobody(
    runtime, batch_bounty, fault_broker, step
) -> None:  # type: ignore[no-untyped-def]
    killed = worker(runtime, f"batch-killed-{step}", **{FAULT_ENV: step})
    try:
        members = submit(batch_bounty, range(4))
        assert killed.wait(timeout=120) == -signal.SIGKILL, f"the worker was not killed at {step}"
    finally:
        if killed.poll() is None:
            stop_worker(killed)
    # What the dead worker left: one batch slot reserved for the four, and (after storing) their claim.
    [slot] = Slot.objects.filter(bounty=batch_bounty, state="reserved")
    assert set(slot.batch_members.values_list("pk", flat=True)) == {s.pk for s in members}
    expected = "checked" if step == "slot_reserved" else "verified"
    assert states(members) == {expected}
    time.sleep(1.2)  # STUCK_AFTER is 1 s for these workers
    process = worker(runtime, f"batch-restarted-{step}")
    try:
        celery_app.send_task("bounty.tasks.sweep", queue=FAULT_QUEUE)
        wait_until(settled, timeout=120, what="the sweeper to finish the batch")
    finally:
        stop_worker(process)
    assert states(members) == {"broadcast"}
    [claim] = Transaction.objects.filter(kind="claim")
    assert Slot.objects.get(pk=slot.pk).spent_by_id == claim.pk
    assert check_invariants(runtime.ledger)["paid"] == 4
    assert reverify_ledger_with_bitcoinx(ledger()) == 2
