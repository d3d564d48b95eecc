"""Batched claims on the service side (bounty/batches.py): when a bounty's waiting images are claimed, the
off-chain check that keeps a bad image out of a batch, and who a batch claim pays; on the local ledger,
re-verified with bitcoinx."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from bsv.script.script import Script
from pytest_django import Settings

# The chain tests' actors, ledger helpers and bitcoinx re-verification, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contracts"))

from ledger_helpers import (
    ADMIN,
    ALICE,
    MALLORY,
    OPERATOR,
    deployed_slots,
    funded_ledger,
    reverify_ledger_with_bitcoinx,
    sample_images,
    small_model,
)

from bounty.batches import (
    BatchAction,
    BatchBuild,
    BatchMember,
    WaitingImage,
    build_batch,
    decide,
    max_wait,
    pays_every_member,
)
from contracts.batch_slot import BatchSlotContract
from contracts.chain import Utxo
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.ledger import LocalLedger
from contracts.txverify import parse_transaction

RATE = FeeRate(100)
REWARD = 1_500
LANES = 4
MODEL = small_model()
DIGIT, ACCEPTED, REJECTED = sample_images(MODEL)
CONTRACT = BatchSlotContract.from_model(MODEL, DIGIT, LANES, OPERATOR.public_key, ADMIN.public_key)
PAYEES = [Key(bytes([0x40 + i]) * 32, "testnet") for i in range(6)]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def waiting(*ages: float) -> list[WaitingImage]:
    return [WaitingImage(100 + i, NOW - timedelta(seconds=age)) for i, age in enumerate(ages)]


def test_a_full_batch_is_claimed_at_once_oldest_first() -> None:
    decision = decide(waiting(5, 50, 1, 30, 2), LANES, NOW, timedelta(seconds=60))
    assert decision.action is BatchAction.CLAIM
    assert decision.members == (101, 103, 100, 104), "the four oldest, oldest first"
    assert decision.missing == 0


def test_a_partial_batch_waits_until_its_oldest_image_has_waited_the_maximum() -> None:
    decision = decide(waiting(20, 5), LANES, NOW, timedelta(seconds=60))
    assert decision.action is BatchAction.WAIT and decision.members == ()
    assert (decision.missing, decision.wait_seconds) == (2, 40)
    assert decision.status() == "waiting for 2 more images or at most 40 seconds"
    almost = decide(waiting(59.5, 5), LANES, NOW, timedelta(seconds=60))
    assert almost.status() == "waiting for 2 more images or at most 1 seconds"
    late = decide(waiting(60, 5, 3), LANES, NOW, timedelta(seconds=60))
    assert late.action is BatchAction.CLAIM and late.members == (100, 101, 102)
    assert late.missing == 1


def test_nothing_waiting_means_nothing_to_claim() -> None:
    decision = decide([], LANES, NOW, timedelta(seconds=60))
    assert decision.action is BatchAction.WAIT and decision.missing == LANES
    assert decision.status() == "waiting for 4 more images or at most 60 seconds"
    with pytest.raises(ValueError, match="at least one"):
        decide([], 0, NOW)


def test_the_maximum_wait_is_a_setting_of_60_seconds_by_default(settings: Settings) -> None:
    assert max_wait() == timedelta(seconds=60)
    settings.BATCH_MAX_WAIT = 15
    assert max_wait() == timedelta(seconds=15)
    assert decide(waiting(10), LANES, NOW).wait_seconds == 5


def members(images: np.ndarray) -> list[BatchMember]:
    return [BatchMember(200 + i, image, PAYEES[i].address) for i, image in enumerate(images)]


def paid(ledger: LocalLedger, key: Key) -> list[int]:
    return [utxo.satoshis for utxo in ledger.utxos(key.address)]


def build(slot: Utxo, batch: list[BatchMember]) -> BatchBuild:
    return build_batch(
        CONTRACT, slot, batch, OPERATOR, MODEL, reward=REWARD, fee_rate=RATE, change_address=ALICE.address
    )


def test_one_bad_image_is_left_out_and_the_others_are_paid(tmp_path: Path) -> None:
    ledger = funded_ledger(tmp_path / "ledger", RATE)
    slots = deployed_slots(ledger, CONTRACT, REWARD, 2, RATE)
    batch = members(ACCEPTED[:4])
    batch[1] = BatchMember(201, REJECTED[0], PAYEES[1].address)
    result = build(slots[0], batch)
    assert result.excluded == (201,)
    assert result.paid == (200, 202, 203)
    built = result.built
    assert built is not None
    ledger.broadcast(built.raw)
    assert [paid(ledger, PAYEES[i]) for i in range(4)] == [[REWARD], [], [REWARD], [REWARD]]
    # Output i pays paid[i], so each submission knows its output.
    outputs = parse_transaction(built.raw).outputs
    for position, key in enumerate((PAYEES[0], PAYEES[2], PAYEES[3])):
        assert outputs[position].locking_script.serialize() == key.locking_script()
    # A batch of bad images only builds nothing.
    nothing = build(slots[1], [BatchMember(300, REJECTED[1], PAYEES[4].address)])
    assert nothing.built is None and nothing.excluded == (300,)
    assert reverify_ledger_with_bitcoinx(ledger) == 2


def test_a_copy_of_a_batch_claim_with_other_images_pays_the_same_members(tmp_path: Path) -> None:
    ledger = funded_ledger(tmp_path / "ledger", RATE)
    [slot] = deployed_slots(ledger, CONTRACT, REWARD, 1, RATE)
    batch = members(ACCEPTED[:3])
    built = build(slot, batch).built
    assert built is not None
    assert pays_every_member(built.raw, batch, REWARD)
    # Anyone can swap the unlocking script's images for other accepted ones: same outputs, another txid.
    copy = parse_transaction(built.raw)
    unlocking = copy.inputs[0].unlocking_script.serialize()
    signature_push = unlocking[: unlocking[0] + 1]
    swapped = CONTRACT.claim_unlocking(signature_push[1:], ACCEPTED[5:9])
    copy.inputs[0].unlocking_script = Script(swapped)
    raw_copy = copy.serialize()
    assert copy.txid() != built.txid
    ledger.broadcast(raw_copy)
    assert pays_every_member(raw_copy, batch, REWARD), "the copy is the batch's payment"
    assert [paid(ledger, PAYEES[i]) for i in range(3)] == [[REWARD]] * 3
    assert reverify_ledger_with_bitcoinx(ledger) == 2
    # A transaction that pays someone else instead of one member is not the batch's payment.
    other = [*batch[:2], BatchMember(209, ACCEPTED[3], MALLORY.address)]
    assert not pays_every_member(built.raw, other, REWARD)
    assert not pays_every_member(built.raw, batch, REWARD + 1)
