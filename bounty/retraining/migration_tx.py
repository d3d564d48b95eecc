"""The migration transaction: old slots through the admin branch, topped up from the operator wallet, into
new slots of another model.

`contracts.transactions.build_migration` pays the new slots from the old slots' money alone. A slot holds
reward + claim fee (about 1,200 sat), while writing a new slot's 25 KB locking script costs about 2,500 sat
of fee at 100 sat/kB, so it can never afford even one. This builder adds P2PKH inputs of the operator wallet
(as a deploy does) so every free slot becomes exactly one new slot; it is built from the same contracts
primitives and ends in the same `finish` (interpreter, policy and fee checks) before anything sees it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bsv import Transaction
from bsv.script.script import Script

from contracts.chain import Utxo
from contracts.errors import InsufficientFundsError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.slot import SlotContract
from contracts.transactions import (
    DUST,
    P2PKH_UNLOCKING_MAX,
    REFUND_UNLOCKING_MAX,
    TX_VERSION,
    BuiltTransaction,
    finish,
    output,
    p2pkh_unlocking,
    signature,
    tx_bytes,
    unsigned_input,
)


def per_transaction(contract: SlotContract, policy: Policy = DEFAULT_POLICY) -> int:
    """How many old slots (and as many new ones) fit in one migration transaction, with room for funding."""
    per_slot = contract.slot_output_bytes + 32 + 4 + 1 + REFUND_UNLOCKING_MAX + 4
    return max(1, (policy.max_transaction_bytes - tx_bytes([P2PKH_UNLOCKING_MAX] * 8, [25]) - 16) // per_slot)


def build_funded_migration(
    slots: Sequence[Utxo],
    admin: Key,
    contract: SlotContract,
    reward: int,
    funding: Sequence[Utxo],
    funder: Key,
    *,
    fee_rate: FeeRate,
    policy: Policy = DEFAULT_POLICY,
) -> BuiltTransaction:
    """Spend `slots` (admin branch) and as few of `funding` (largest first) as needed into len(slots) new
    slots of `contract`; change goes back to `funder`. The first len(slots) outputs are the new slots."""
    if not slots:
        raise ValueError("nothing to migrate: no slots given")
    value = contract.slot_value(reward, fee_rate)
    script, change = contract.locking_script, funder.locking_script()
    count = len(slots)
    wanted = count * value
    chosen: list[Utxo] = []
    coins = sorted(funding, key=lambda utxo: utxo.satoshis, reverse=True)
    while True:
        sizes = [REFUND_UNLOCKING_MAX] * count + [P2PKH_UNLOCKING_MAX] * len(chosen)
        fee = fee_rate.fee_for(tx_bytes(sizes, [len(script)] * count + [len(change)]))
        total = sum(u.satoshis for u in slots) + sum(u.satoshis for u in chosen)
        if total >= wanted + fee:
            break
        if len(chosen) == len(coins):
            raise InsufficientFundsError(wanted + fee, total, funder.address)
        chosen.append(coins[len(chosen)])
    outputs = [output(script, value) for _ in range(count)]
    if total - wanted - fee >= DUST:
        outputs.append(output(change, total - wanted - fee))
    spent = [*slots, *chosen]
    tx = Transaction([unsigned_input(utxo) for utxo in spent], outputs, version=TX_VERSION)
    unlocking = [
        SlotContract.refund_unlocking(signature(tx, i, admin))
        if i < count
        else p2pkh_unlocking(tx, i, funder)
        for i in range(len(spent))
    ]
    for tx_input, unlock in zip(tx.inputs, unlocking, strict=True):
        tx_input.unlocking_script = Script(unlock)
    return finish("migrate", tx, spent, fee_rate, slots=count, policy=policy)
