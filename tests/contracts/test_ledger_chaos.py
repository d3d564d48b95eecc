"""The ledger's chaos mode answers as ARC does under stress, and each answer is what the clients read."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import (
    ADMIN,
    BOB,
    OPERATOR,
    deployed_slots,
    funded_ledger,
    reverify_ledger_with_bitcoinx,
    sample_images,
    small_model,
)

from contracts.chain import TxState
from contracts.errors import ChainUnavailable, DoubleSpend, TransactionRejected
from contracts.fees import FeeRate
from contracts.ledger import LocalLedger
from contracts.slot import SlotContract
from contracts.transactions import build_claim
from contracts.txverify import parse_transaction

RATE = FeeRate(100)
REWARD = 1_000
MODEL = small_model()
DIGIT, ACCEPTED, _ = sample_images(MODEL)
CONTRACT = SlotContract.from_model(MODEL, DIGIT, OPERATOR.public_key, ADMIN.public_key)


@pytest.fixture
def ledger(tmp_path: Path) -> LocalLedger:
    return funded_ledger(tmp_path / "ledger", RATE)


def claim_raw(ledger: LocalLedger, index: int = 0) -> tuple[bytes, str]:
    slot = deployed_slots(ledger, CONTRACT, REWARD, 1, RATE)[0]
    claim = build_claim(slot, CONTRACT, ACCEPTED[index], BOB.address, OPERATOR, fee_rate=RATE)
    return claim.raw, f"{slot.txid}:{slot.vout}"


def pays_bob(ledger: LocalLedger, txid: str) -> int:
    tx = parse_transaction(ledger.get_transaction(txid))
    return sum(out.satoshis for out in tx.outputs if out.locking_script.serialize() == BOB.locking_script())


def test_it_answers_busy_with_a_transient_409_and_stores_nothing(ledger: LocalLedger) -> None:
    raw, _ = claim_raw(ledger)
    ledger.chaos.configure(queue=["busy"])
    with pytest.raises(ChainUnavailable) as caught:
        ledger.broadcast(raw)
    assert caught.value.code == "409" and not caught.value.permanent
    txid = parse_transaction(raw).txid()
    assert ledger.status(txid).state is TxState.UNKNOWN
    assert ledger.broadcast(raw) == txid, "the queue is spent: the next try goes through"


def test_a_malleated_copy_in_the_mempool_makes_the_claim_a_double_spend(ledger: LocalLedger) -> None:
    raw, outpoint = claim_raw(ledger)
    ledger.chaos.configure(queue=["malleate"])
    with pytest.raises(DoubleSpend) as caught:
        ledger.broadcast(raw)
    [copy] = caught.value.competing_txids
    assert caught.value.code == "DOUBLE_SPEND_ATTEMPTED" and copy != parse_transaction(raw).txid()
    parent, vout = outpoint.split(":")
    assert ledger.spender(parent, int(vout)) == copy
    assert pays_bob(ledger, copy) == pays_bob_raw(raw), "the copy pays the same person the same amount"
    assert reverify_ledger_with_bitcoinx(ledger) >= 2, "the copy is valid on a second interpreter too"


def pays_bob_raw(raw: bytes) -> int:
    tx = parse_transaction(raw)
    return sum(out.satoshis for out in tx.outputs if out.locking_script.serialize() == BOB.locking_script())


def test_a_malleated_copy_mined_first_leaves_the_claim_in_the_orphan_mempool(ledger: LocalLedger) -> None:
    raw, _ = claim_raw(ledger)
    ledger.chaos.configure(queue=["malleate_mined"])
    with pytest.raises(DoubleSpend) as caught:
        ledger.broadcast(raw)
    assert (caught.value.code, caught.value.competing_txids) == ("SEEN_IN_ORPHAN_MEMPOOL", ())
    ledger.mine()
    assert ledger.status(parse_transaction(raw).txid()).state is TxState.REJECTED


def test_reject_later_reports_seen_then_rejected_and_leaves_the_output_unspent(ledger: LocalLedger) -> None:
    slot = deployed_slots(ledger, CONTRACT, REWARD, 1, RATE)[0]
    raw = build_claim(slot, CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE).raw
    txid = parse_transaction(raw).txid()
    ledger.chaos.configure(queue=["reject_later"])
    assert ledger.broadcast(raw) == txid
    assert ledger.status(txid).state is TxState.MEMPOOL
    ledger.mine()
    assert ledger.status(txid).state is TxState.REJECTED
    assert ledger.spender(slot.txid, slot.vout) is None
    # As ARC does (metamorph's ProcessTransaction), the same bytes get the refusal it holds, unjudged ...
    with pytest.raises(TransactionRejected, match="not existing in node mempool"):
        ledger.broadcast(raw)
    # ... and the same payment with other bytes (another lock time) is judged afresh and taken.
    again = build_claim(slot, CONTRACT, ACCEPTED[0], BOB.address, OPERATOR, fee_rate=RATE, lock_time=1).raw
    assert parse_transaction(again).locktime == 1
    assert ledger.broadcast(again) == parse_transaction(again).txid() != txid
    assert ledger.spender(slot.txid, slot.vout) == parse_transaction(again).txid()
    assert pays_bob(ledger, parse_transaction(again).txid()) == REWARD


def test_it_refuses_a_bad_plan(ledger: LocalLedger) -> None:
    with pytest.raises(ValueError):
        ledger.chaos.configure(queue=["meteor"])
    with pytest.raises(ValueError):
        ledger.chaos.configure(rates={"busy": 0.8, "malleate": 0.5})
