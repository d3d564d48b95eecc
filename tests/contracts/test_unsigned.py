"""Unsigned refunds and migrations: prepared here, signed elsewhere (the admin key offline), and carried
between the two as JSON that comes back exactly, so the signatures made meanwhile still fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import ADMIN, ALICE, MALLORY, OPERATOR, deployed_slots, funded_ledger, small_model

from contracts.chain import TxState, Utxo
from contracts.errors import InsufficientFundsError, VerificationError
from contracts.fees import FeeRate
from contracts.ledger import LocalLedger
from contracts.refunds import UnsignedRefund, build_refund, prepare_refund, refund_fee
from contracts.slot import SlotContract
from contracts.transactions import UnsignedMigration, prepare_migration

RATE = FeeRate(100)
REWARD = 1_000
MODEL = small_model()
CONTRACT = SlotContract.from_model(MODEL, 3, OPERATOR.public_key, ADMIN.public_key)


@pytest.fixture
def ledger(tmp_path: Path) -> LocalLedger:
    return funded_ledger(tmp_path / "ledger", RATE)


@pytest.fixture
def slots(ledger: LocalLedger) -> list[Utxo]:
    return deployed_slots(ledger, CONTRACT, REWARD, 3, RATE)


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_a_refund_signed_offline_is_the_refund_the_admin_key_builds(
    ledger: LocalLedger, slots: list[Utxo]
) -> None:
    unsigned = prepare_refund(slots, ALICE.address, fee_rate=RATE)
    assert unsigned.fee == refund_fee(3, RATE) and unsigned.amount == unsigned.total - unsigned.fee
    carried = UnsignedRefund.from_json(through_json(unsigned.to_json()))
    assert carried == unsigned
    signatures = [ADMIN.sign_preimage(preimage) for preimage in carried.admin_preimages()]
    signed = carried.sign(signatures, fee_rate=RATE)
    at_once = build_refund(slots, ADMIN, ALICE.address, fee_rate=RATE)
    assert (signed.fee, signed.size, signed.outputs()[0].satoshis) == (
        at_once.fee,
        at_once.size,
        at_once.outputs()[0].satoshis,
    )
    ledger.broadcast(signed.raw)
    ledger.mine()
    assert ledger.status(signed.txid).state is TxState.MINED
    assert [u.satoshis for u in ledger.utxos(ALICE.address) if u.txid == signed.txid] == [unsigned.amount]


def test_a_refund_refuses_wrong_signatures_and_too_little_money(slots: list[Utxo]) -> None:
    unsigned = prepare_refund(slots, ALICE.address, fee_rate=RATE)
    wrong = [MALLORY.sign_preimage(preimage) for preimage in unsigned.admin_preimages()]
    with pytest.raises(VerificationError, match="input 0: script failed"):
        unsigned.sign(wrong, fee_rate=RATE)
    with pytest.raises(ValueError, match="expected 3 admin signature"):
        unsigned.sign(wrong[:2], fee_rate=RATE)
    poor = [Utxo(u.txid, u.vout, 10, u.script) for u in slots]
    with pytest.raises(InsufficientFundsError):
        prepare_refund(poor, ALICE.address, fee_rate=RATE)
    with pytest.raises(ValueError, match="nothing to refund"):
        prepare_refund([], ALICE.address, fee_rate=RATE)


def test_a_migration_comes_back_from_json_with_the_same_preimages(slots: list[Utxo]) -> None:
    newer = SlotContract.from_model(small_model(seed=11), 5, OPERATOR.public_key, ADMIN.public_key)
    unsigned = prepare_migration(slots, newer, REWARD, ALICE.address, fee_rate=RATE)
    data = through_json(unsigned.to_json())
    assert len(data["scripts"]) == 3, "the old slot script, the new one and the change, each written once"
    carried = UnsignedMigration.from_json(data)
    assert carried == unsigned
    assert carried.admin_preimages() == unsigned.admin_preimages()


def valid_refund(slots: list[Utxo]) -> dict[str, Any]:
    return through_json(prepare_refund(slots, ALICE.address, fee_rate=RATE).to_json())


MALFORMED = {
    "not an object": lambda d: [d],
    "another kind": lambda d: {**d, "kind": "migration"},
    "no scripts": lambda d: {k: v for k, v in d.items() if k != "scripts"},
    "script not hex": lambda d: {**d, "scripts": ["zz"]},
    "unknown script index": lambda d: {**d, "spent": [[*s[:3], 9] for s in d["spent"]]},
    "negative satoshis": lambda d: {**d, "outputs": [[0, -1]]},
    "short txid": lambda d: {**d, "spent": [["ab", *s[1:]] for s in d["spent"]]},
    "nothing spent": lambda d: {**d, "spent": []},
    "two outputs": lambda d: {**d, "outputs": d["outputs"] * 2},
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_unsigned_refund_is_refused(slots: list[Utxo], change: Any) -> None:
    with pytest.raises(ValueError):
        UnsignedRefund.from_json(change(valid_refund(slots)))


def test_a_malformed_unsigned_migration_is_refused(slots: list[Utxo]) -> None:
    newer = SlotContract.from_model(small_model(seed=11), 5, OPERATOR.public_key, ADMIN.public_key)
    data = through_json(prepare_migration(slots, newer, REWARD, ALICE.address, fee_rate=RATE).to_json())
    for broken in ({**data, "admin_inputs": 0}, {**data, "slots": 99}, {**data, "kind": "refund"}):
        with pytest.raises(ValueError):
            UnsignedMigration.from_json(broken)
