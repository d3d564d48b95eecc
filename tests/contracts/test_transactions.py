"""Deploy -> claim -> refund/migrate on the local ledger, and every way a claim must fail.

Each rejection is shown twice where it can be: the builder refuses to produce the transaction, and the ledger
refuses the same transaction assembled without the builder's verification. Every transaction the ledger
accepted is re-verified with bitcoinx at the end of the flow tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bsv import Transaction
from bsv.script.script import Script
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

from contracts.address import p2pkh_locking_script
from contracts.chain import TxState, Utxo
from contracts.errors import ImageError, TransactionRejected, VerificationError
from contracts.fees import FeeRate
from contracts.ledger import LocalLedger
from contracts.policy import Policy
from contracts.refunds import build_refund
from contracts.slot import SlotContract
from contracts.transactions import (
    assemble_claim,
    build_claim,
    build_deploy,
    build_migration,
    push_data,
    signature,
    unsigned_input,
)
from contracts.txverify import parse_transaction

RATE = FeeRate(100)
REWARD = 1_000
MODEL = small_model()
DIGIT, ACCEPTED, REJECTED = sample_images(MODEL)
CONTRACT = SlotContract.from_model(MODEL, DIGIT, OPERATOR.public_key, ADMIN.public_key)


@pytest.fixture
def ledger(tmp_path: Path) -> LocalLedger:
    return funded_ledger(tmp_path / "ledger", RATE)


@pytest.fixture
def slots(ledger: LocalLedger) -> list[Utxo]:
    return deployed_slots(ledger, CONTRACT, REWARD, 4, RATE)


def expect_ledger_rejects(ledger: LocalLedger, raw: bytes, code: str) -> TransactionRejected:
    with pytest.raises(TransactionRejected) as caught:
        ledger.broadcast(raw)
    assert caught.value.code == code, caught.value
    return caught.value


def test_deploy_claim_refund_on_the_local_ledger(ledger: LocalLedger, slots: list[Utxo]) -> None:
    assert [slot.satoshis for slot in slots] == [CONTRACT.slot_value(REWARD, RATE)] * 4
    assert all(slot.script == CONTRACT.locking_script for slot in slots)

    claim = build_claim(slots[0], CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE)
    assert claim.size <= CONTRACT.max_claim_tx_bytes
    assert ledger.broadcast(claim.raw) == claim.txid
    assert [utxo.satoshis for utxo in ledger.utxos(BOB.address)] == [REWARD], "the whole reward is paid"

    refund = build_refund(slots[1:], ADMIN, ALICE.address, fee_rate=RATE)
    ledger.broadcast(refund.raw)
    ledger.mine()
    assert ledger.status(refund.txid).state is TxState.MINED
    refunded = [u.satoshis for u in ledger.utxos(ALICE.address) if u.txid == refund.txid]
    assert refunded == [3 * slots[1].satoshis - refund.fee]
    assert reverify_ledger_with_bitcoinx(ledger) == 3


def test_a_wrong_digit_is_refused_by_the_builder_and_the_ledger(
    ledger: LocalLedger, slots: list[Utxo]
) -> None:
    with pytest.raises(VerificationError, match="input 0: script failed"):
        build_claim(slots[0], CONTRACT, REJECTED[0], BOB.address, OPERATOR, fee_rate=RATE)
    payout = slots[0].satoshis - CONTRACT.claim_fee(RATE)
    forced = assemble_claim(slots[0], CONTRACT, REJECTED[0], BOB.address, OPERATOR, payout=payout)
    expect_ledger_rejects(ledger, forced.serialize(), "461")
    assert ledger.utxos(BOB.address) == []


def test_an_image_outside_0_255_never_becomes_a_transaction(slots: list[Utxo]) -> None:
    image = ACCEPTED[0].copy()
    image[5] = 300
    with pytest.raises(ImageError):
        build_claim(slots[0], CONTRACT, image, BOB.address, OPERATOR, fee_rate=RATE)


def claim_without_builder(slot: Utxo, unlocking_for: Callable[[Transaction], bytes]) -> bytes:
    payout = slot.satoshis - CONTRACT.claim_fee(RATE)
    tx = assemble_claim(slot, CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, payout=payout)
    tx.inputs[0].unlocking_script = Script(unlocking_for(tx))
    return bytes(tx.serialize())


def test_a_missing_operator_signature_is_rejected(ledger: LocalLedger, slots: list[Utxo]) -> None:
    raw = claim_without_builder(slots[0], lambda tx: CONTRACT.encode_image(ACCEPTED[0]) + b"\x51")
    expect_ledger_rejects(ledger, raw, "461")


def test_a_signature_by_anyone_but_the_operator_is_rejected(ledger: LocalLedger, slots: list[Utxo]) -> None:
    raw = claim_without_builder(
        slots[0], lambda tx: CONTRACT.claim_unlocking(signature(tx, 0, MALLORY), ACCEPTED[0])
    )
    expect_ledger_rejects(ledger, raw, "461")
    with pytest.raises(VerificationError):
        build_claim(slots[0], CONTRACT, ACCEPTED[0], BOB.address, MALLORY, fee_rate=RATE)


def test_a_payout_redirected_after_signing_is_rejected(ledger: LocalLedger, slots: list[Utxo]) -> None:
    claim = build_claim(slots[0], CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE)
    tx = parse_transaction(claim.raw)
    tx.outputs[0].locking_script = Script(p2pkh_locking_script(MALLORY.hash160))
    expect_ledger_rejects(ledger, tx.serialize(), "461")
    assert ledger.broadcast(claim.raw) == claim.txid, "the honest claim still goes through"


def test_a_slot_cannot_be_claimed_twice(ledger: LocalLedger, slots: list[Utxo]) -> None:
    ledger.broadcast(build_claim(slots[0], CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE).raw)
    second = build_claim(slots[0], CONTRACT, ACCEPTED[1], MALLORY.address, OPERATOR, fee_rate=RATE)
    expect_ledger_rejects(ledger, second.raw, "DOUBLE_SPEND_ATTEMPTED")
    ledger.mine()
    assert ledger.status(second.txid).state is TxState.REJECTED
    assert ledger.utxos(MALLORY.address) == []


def test_a_claim_below_the_fee_floor_is_rejected(
    tmp_path: Path, ledger: LocalLedger, slots: list[Utxo]
) -> None:
    strict = LocalLedger(ledger.data_dir, fee_rate=FeeRate(1_000))
    cheap = build_claim(slots[0], CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE)
    expect_ledger_rejects(strict, cheap.raw, "465")


def test_a_claim_of_an_unknown_slot_is_rejected(ledger: LocalLedger) -> None:
    ghost = Utxo("cd" * 32, 0, CONTRACT.slot_value(REWARD, RATE), CONTRACT.locking_script)
    claim = build_claim(ghost, CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE)
    expect_ledger_rejects(ledger, claim.raw, "460")


def test_the_admin_branch_needs_the_admin(ledger: LocalLedger, slots: list[Utxo]) -> None:
    with pytest.raises(VerificationError, match="input 0"):
        build_refund(slots[:1], OPERATOR, OPERATOR.address, fee_rate=RATE)
    tx = parse_transaction(build_refund(slots[:1], ADMIN, ALICE.address, fee_rate=RATE).raw)
    tx.inputs[0] = unsigned_input(slots[0])  # a parsed input lacks the spent script the signature commits to
    tx.inputs[0].unlocking_script = Script(push_data(signature(tx, 0, MALLORY)) + b"\x00")
    expect_ledger_rejects(ledger, tx.serialize(), "461")


def test_a_deploy_larger_than_the_size_limit_is_split_into_a_chain(ledger: LocalLedger) -> None:
    small_policy = Policy(max_transaction_bytes=3 * CONTRACT.slot_output_bytes + 400)
    deploys = build_deploy(
        CONTRACT, REWARD, 7, ledger.utxos(ALICE.address), ALICE, fee_rate=RATE, policy=small_policy
    )
    assert [len(d.slots) for d in deploys] == [3, 3, 1]
    assert all(d.size <= small_policy.max_transaction_bytes for d in deploys)
    assert [d.spent[0].txid for d in deploys[1:]] == [d.txid for d in deploys[:-1]], "each spends the change"
    for deploy in deploys:
        ledger.broadcast(deploy.raw)
    ledger.mine()
    claim = build_claim(deploys[2].slots[0], CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE)
    ledger.broadcast(claim.raw)
    assert reverify_ledger_with_bitcoinx(ledger) == 4


def test_unused_slots_migrate_to_a_newer_model(ledger: LocalLedger, slots: list[Utxo]) -> None:
    newer = small_model(seed=11)
    digit, accepted, _ = sample_images(newer, seed=2)
    new_contract = SlotContract.from_model(newer, digit, OPERATOR.public_key, ADMIN.public_key)
    migration = build_migration(slots, ADMIN, new_contract, REWARD, ALICE.address, fee_rate=RATE)
    assert len(migration.slots) == 3, "4 old slots' money funds 3 new ones plus fees, the rest is change"
    assert all(slot.script == new_contract.locking_script for slot in migration.slots)
    ledger.broadcast(migration.raw)
    claim = build_claim(migration.slots[0], new_contract, accepted[0], BOB.address, OPERATOR, fee_rate=RATE)
    ledger.broadcast(claim.raw)
    assert [u.satoshis for u in ledger.utxos(BOB.address)] == [REWARD]
    assert reverify_ledger_with_bitcoinx(ledger) == 3


def test_claims_verify_across_many_images(ledger: LocalLedger) -> None:
    [deploy] = build_deploy(CONTRACT, REWARD, 6, ledger.utxos(ALICE.address), ALICE, fee_rate=RATE)
    ledger.broadcast(deploy.raw)
    images = np.vstack([ACCEPTED[:6]])
    for slot, image in zip(deploy.slots, images, strict=True):
        claim = build_claim(slot, CONTRACT, image, BOB.address, OPERATOR, fee_rate=RATE)
        assert RATE.covers(claim.fee, claim.size) and claim.size <= CONTRACT.max_claim_tx_bytes
        ledger.broadcast(claim.raw)
    assert len(ledger.utxos(BOB.address)) == 6
    assert reverify_ledger_with_bitcoinx(ledger) == 7


def test_built_inputs_carry_their_source(slots: list[Utxo]) -> None:
    spent = unsigned_input(slots[0])
    assert (spent.satoshis, spent.locking_script.serialize()) == (slots[0].satoshis, slots[0].script)
