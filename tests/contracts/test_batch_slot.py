"""Batch slots on the local ledger: full and padded batch claims are accepted, a batch with one wrong image
is refused by the builder and by the ledger, every payee is bound by the signature, the admin branch
refunds; every transaction the ledger accepted is re-verified with bitcoinx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ledger_helpers import (
    ADMIN,
    ALICE,
    BOB,
    MALLORY,
    OPERATOR,
    deployed_slots,
    funded_ledger,
    reverify_ledger_with_bitcoinx,
    sample_images,
    small_model,
)

from contracts.batch_slot import BatchSlotContract
from contracts.batch_transactions import (
    BatchClaimEntry,
    assemble_batch_claim,
    build_batch_claim,
)
from contracts.chain import TxState, Utxo
from contracts.errors import ImageError, TransactionRejected, VerificationError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.ledger import LocalLedger
from contracts.model import IntegerModel
from contracts.refunds import build_refund
from contracts.slot import SlotContract
from contracts.txverify import output

RATE = FeeRate(100)
REWARD = 2_000
LANES = 4
MODEL = small_model()
DIGIT, ACCEPTED, REJECTED = sample_images(MODEL)
CONTRACT = BatchSlotContract.from_model(MODEL, DIGIT, LANES, OPERATOR.public_key, ADMIN.public_key)
CONTRIBUTORS = [Key(bytes([0x30 + i]) * 32, "testnet") for i in range(LANES)]


@pytest.fixture
def ledger(tmp_path: Path) -> LocalLedger:
    return funded_ledger(tmp_path / "ledger", RATE)


@pytest.fixture
def slots(ledger: LocalLedger) -> list[Utxo]:
    return deployed_slots(ledger, CONTRACT, REWARD, 3, RATE)


def entries(count: int, images: np.ndarray = ACCEPTED) -> list[BatchClaimEntry]:
    return [BatchClaimEntry(images[i], CONTRIBUTORS[i].address) for i in range(count)]


def paid(ledger: LocalLedger, key: Key) -> list[int]:
    return [utxo.satoshis for utxo in ledger.utxos(key.address)]


def test_a_batch_slot_holds_k_rewards_and_the_worst_case_claim_fee(slots: list[Utxo]) -> None:
    assert [slot.satoshis for slot in slots] == [LANES * REWARD + CONTRACT.claim_fee(RATE)] * 3
    assert all(slot.script == CONTRACT.locking_script for slot in slots)
    # The same branch layout as a single slot: IF <predicate> <operator> CHECKSIG ELSE <admin> ... ENDIF.
    single = SlotContract(b"", DIGIT, OPERATOR.public_key, ADMIN.public_key, lambda pixels: b"", 0)
    branches = single.locking_script
    assert CONTRACT.locking_script == branches[:1] + CONTRACT.predicate + branches[1:]


def test_a_full_batch_pays_every_contributor_in_one_transaction(
    ledger: LocalLedger, slots: list[Utxo]
) -> None:
    claim = build_batch_claim(slots[0], CONTRACT, entries(LANES), OPERATOR, reward=REWARD, fee_rate=RATE)
    assert claim.size <= CONTRACT.max_claim_tx_bytes
    assert claim.check.outputs == LANES
    assert ledger.broadcast(claim.raw) == claim.txid
    for contributor in CONTRIBUTORS:
        assert paid(ledger, contributor) == [REWARD]
    assert claim.fee == CONTRACT.claim_fee(RATE), "no change address: the reserved fee goes to the miner"
    # With the funder's address, what the worst case reserved and this claim does not need comes back.
    before = sum(paid(ledger, ALICE))
    returned = build_batch_claim(
        slots[1], CONTRACT, entries(LANES), OPERATOR, reward=REWARD, fee_rate=RATE,
        change_address=ALICE.address,
    )  # fmt: skip
    ledger.broadcast(returned.raw)
    assert returned.check.outputs == LANES + 1
    assert returned.fee < CONTRACT.claim_fee(RATE)
    assert RATE.covers(returned.fee, returned.size)
    assert sum(paid(ledger, ALICE)) - before == CONTRACT.claim_fee(RATE) - returned.fee
    assert reverify_ledger_with_bitcoinx(ledger) == 3


def test_a_padded_batch_pays_its_contributors_and_returns_the_rest_to_the_funder(
    ledger: LocalLedger, slots: list[Utxo]
) -> None:
    before = sum(paid(ledger, ALICE))
    claim = build_batch_claim(
        slots[0], CONTRACT, entries(1), OPERATOR, reward=REWARD, fee_rate=RATE, change_address=ALICE.address
    )
    ledger.broadcast(claim.raw)
    assert paid(ledger, CONTRIBUTORS[0]) == [REWARD]
    assert all(paid(ledger, contributor) == [] for contributor in CONTRIBUTORS[1:])
    returned = sum(paid(ledger, ALICE)) - before
    assert returned == slots[0].satoshis - REWARD - claim.fee
    assert returned >= (LANES - 1) * REWARD, "the padded lanes' rewards go back whole"
    assert claim.fee < CONTRACT.claim_fee(RATE)
    # Padding with a copy of another accepted image works the same.
    other = build_batch_claim(
        slots[1], CONTRACT, entries(2), OPERATOR, reward=REWARD, fee_rate=RATE,
        change_address=ALICE.address, padding=ACCEPTED[7],
    )  # fmt: skip
    ledger.broadcast(other.raw)
    ledger.mine()
    assert ledger.status(other.txid).state is TxState.MINED
    assert reverify_ledger_with_bitcoinx(ledger) == 3


def test_a_padded_batch_needs_somewhere_to_return_the_padded_rewards(slots: list[Utxo]) -> None:
    with pytest.raises(ValueError, match="padded lane"):
        build_batch_claim(slots[0], CONTRACT, entries(2), OPERATOR, reward=REWARD, fee_rate=RATE)


def test_one_wrong_image_fails_the_whole_batch_in_the_builder_and_on_the_ledger(
    ledger: LocalLedger, slots: list[Utxo]
) -> None:
    batch = entries(LANES)
    batch[2] = BatchClaimEntry(REJECTED[0], CONTRIBUTORS[2].address)
    with pytest.raises(VerificationError, match="input 0: script failed"):
        build_batch_claim(slots[0], CONTRACT, batch, OPERATOR, reward=REWARD, fee_rate=RATE)
    forced = assemble_batch_claim(slots[0], CONTRACT, batch, OPERATOR, reward=REWARD, fee_rate=RATE)
    with pytest.raises(TransactionRejected) as caught:
        ledger.broadcast(forced.serialize())
    assert caught.value.code == "461"
    assert all(paid(ledger, contributor) == [] for contributor in CONTRIBUTORS)
    # A wrong padding image is refused the same way.
    with pytest.raises(VerificationError):
        build_batch_claim(
            slots[0], CONTRACT, entries(1), OPERATOR, reward=REWARD, fee_rate=RATE,
            change_address=ALICE.address, padding=REJECTED[1],
        )  # fmt: skip
    # The batch rebuilt without the offender (padded) is accepted.
    rebuilt = [entry for position, entry in enumerate(batch) if position != 2]
    claim = build_batch_claim(
        slots[0], CONTRACT, rebuilt, OPERATOR, reward=REWARD, fee_rate=RATE, change_address=ALICE.address
    )
    ledger.broadcast(claim.raw)
    assert [paid(ledger, c) for c in CONTRIBUTORS] == [[REWARD], [REWARD], [], [REWARD]]
    assert reverify_ledger_with_bitcoinx(ledger) == 2


def test_every_payee_is_bound_by_the_operators_signature(ledger: LocalLedger, slots: list[Utxo]) -> None:
    tx = assemble_batch_claim(slots[0], CONTRACT, entries(LANES), OPERATOR, reward=REWARD, fee_rate=RATE)
    tx.outputs[3] = output(MALLORY.locking_script(), REWARD)  # redirect one payee after signing
    with pytest.raises(TransactionRejected) as caught:
        ledger.broadcast(tx.serialize())
    assert caught.value.code == "461"
    dropped = assemble_batch_claim(slots[0], CONTRACT, entries(LANES), OPERATOR, reward=REWARD, fee_rate=RATE)
    dropped.outputs.pop()  # drop one payee: the signature no longer matches either
    with pytest.raises(TransactionRejected):
        ledger.broadcast(dropped.serialize())
    # Anyone's signature but the operator's is refused.
    forged = assemble_batch_claim(slots[0], CONTRACT, entries(LANES), MALLORY, reward=REWARD, fee_rate=RATE)
    with pytest.raises(TransactionRejected):
        ledger.broadcast(forged.serialize())
    assert ledger.utxos(MALLORY.address) == []


def test_the_admin_refunds_batch_slots(ledger: LocalLedger, slots: list[Utxo]) -> None:
    refund = build_refund(slots, ADMIN, BOB.address, fee_rate=RATE)
    ledger.broadcast(refund.raw)
    assert paid(ledger, BOB) == [sum(slot.satoshis for slot in slots) - refund.fee]
    assert reverify_ledger_with_bitcoinx(ledger) == 2


def test_bad_batches_are_refused_before_anything_is_signed(slots: list[Utxo]) -> None:
    with pytest.raises(ImageError, match=r"pays 1\.\.4"):
        build_batch_claim(slots[0], CONTRACT, entries(0), OPERATOR, reward=REWARD, fee_rate=RATE)
    too_many = [*entries(LANES), BatchClaimEntry(ACCEPTED[5], BOB.address)]
    with pytest.raises(ImageError, match=r"pays 1\.\.4"):
        build_batch_claim(slots[0], CONTRACT, too_many, OPERATOR, reward=REWARD, fee_rate=RATE)
    out_of_range = entries(LANES)
    image = out_of_range[1].pixels.copy()
    image[3] = 256
    out_of_range[1] = BatchClaimEntry(image, CONTRIBUTORS[1].address)
    with pytest.raises(ImageError):
        build_batch_claim(slots[0], CONTRACT, out_of_range, OPERATOR, reward=REWARD, fee_rate=RATE)
    with pytest.raises(ValueError, match="less than"):
        build_batch_claim(slots[0], CONTRACT, entries(LANES), OPERATOR, reward=10**9, fee_rate=RATE)


def test_default_model_batches_on_the_ledger(tmp_path: Path, default_model_path: Path, mnist: Any) -> None:
    model = IntegerModel.load(default_model_path)
    images = np.asarray(mnist.x_test).reshape(-1, 784)[:400]
    predictions = np.asarray(model.predict(images))
    sevens, others = images[predictions == 7], images[predictions != 7]
    contract = BatchSlotContract.from_model(model, 7, 8, OPERATOR.public_key, ADMIN.public_key)
    ledger = funded_ledger(tmp_path / "ledger", RATE, sats=500_000)
    slots = deployed_slots(ledger, contract, REWARD, 2, RATE)
    payees = [BatchClaimEntry(image, BOB.address) for image in sevens[:8]]
    full = build_batch_claim(slots[0], contract, payees, OPERATOR, reward=REWARD, fee_rate=RATE)
    ledger.broadcast(full.raw)
    padded_entries = [BatchClaimEntry(image, BOB.address) for image in sevens[8:11]]
    wrong = [*padded_entries, BatchClaimEntry(others[0], BOB.address)]
    with pytest.raises(VerificationError):
        build_batch_claim(
            slots[1], contract, wrong, OPERATOR, reward=REWARD, fee_rate=RATE, change_address=ALICE.address
        )
    padded = build_batch_claim(
        slots[1], contract, padded_entries, OPERATOR, reward=REWARD, fee_rate=RATE,
        change_address=ALICE.address,
    )  # fmt: skip
    ledger.broadcast(padded.raw)
    assert sorted(paid(ledger, BOB)) == [REWARD] * 11
    assert reverify_ledger_with_bitcoinx(ledger) == 3
