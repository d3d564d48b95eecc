"""A refund before its signatures: the same prepare/sign shape a migration has (`UnsignedMigration`).

A refund sweeps unused slots through the admin branch (`<signature> OP_0`) to one P2PKH address. With the
admin key on the machine, `prepare_refund(...).sign(...)` does it at once; with the key offline the service
stores or shows the unsigned refund (`to_json`), the admin signs `admin_preimages()` elsewhere, and `sign`
puts the signatures in place and verifies the whole transaction like every builder. The fee is priced for
the largest signatures, so any valid signatures make a transaction that pays at least the rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bsv import Transaction
from bsv.script.script import Script

from contracts import unsigned_json
from contracts.address import parse_address
from contracts.chain import Utxo
from contracts.errors import InsufficientFundsError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.slot import SlotContract
from contracts.transactions import (
    DUST,
    REFUND_UNLOCKING_MAX,
    TX_VERSION,
    BuiltTransaction,
    finish,
    unsigned_input,
)
from contracts.txverify import output
from contracts.wire import P2PKH_SCRIPT_BYTES, tx_bytes


@dataclass(frozen=True)
class UnsignedRefund:
    """Every input spends a slot through the admin branch; the one output pays `to_script` `amount`."""

    spent: tuple[Utxo, ...]
    to_script: bytes
    amount: int

    @property
    def total(self) -> int:
        return sum(u.satoshis for u in self.spent)

    @property
    def fee(self) -> int:
        return self.total - self.amount

    @property
    def admin_inputs(self) -> int:
        return len(self.spent)

    def transaction(self) -> Transaction:
        """The unsigned transaction (every input carries the amount and script its preimage commits to)."""
        return Transaction(
            [unsigned_input(u) for u in self.spent], [output(self.to_script, self.amount)], version=TX_VERSION
        )

    def admin_preimages(self) -> list[bytes]:
        """The BIP143 preimage of each input, in input order: what the admin signs."""
        tx = self.transaction()
        return [tx.preimage(index) for index in range(len(self.spent))]

    def sign(
        self, admin_signatures: Sequence[bytes], *, fee_rate: FeeRate, policy: Policy = DEFAULT_POLICY
    ) -> BuiltTransaction:
        """Put the admin's signatures (one per slot) in place and verify; a wrong one raises
        VerificationError."""
        if len(admin_signatures) != len(self.spent):
            raise ValueError(f"expected {len(self.spent)} admin signature(s), got {len(admin_signatures)}")
        tx = self.transaction()
        for tx_input, signature in zip(tx.inputs, admin_signatures, strict=True):
            tx_input.unlocking_script = Script(SlotContract.refund_unlocking(signature))
        return finish("refund", tx, self.spent, fee_rate, policy=policy)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "refund", **unsigned_json.encode(self.spent, [(self.to_script, self.amount)])}

    @classmethod
    def from_json(cls, data: Any) -> UnsignedRefund:
        """The refund `to_json` wrote; ValueError for anything else."""
        if not isinstance(data, dict) or data.get("kind") != "refund":
            raise ValueError("not an unsigned refund")
        spent, outputs = unsigned_json.decode(data)
        if len(outputs) != 1:
            raise ValueError(f"a refund has one output, not {len(outputs)}")
        [(script, amount)] = outputs
        return cls(spent, script, amount)


def refund_fee(slots: int, fee_rate: FeeRate) -> int:
    """The fee of a refund of `slots` slots to a P2PKH address, for the largest signatures."""
    return fee_rate.fee_for(tx_bytes([REFUND_UNLOCKING_MAX] * slots, [P2PKH_SCRIPT_BYTES]))


def prepare_refund(
    slots: Sequence[Utxo], to_address: str, *, fee_rate: FeeRate, network: str | None = None
) -> UnsignedRefund:
    """The unsigned refund of `slots` (any models, any digits) to `to_address`; InsufficientFundsError when
    they hold too little to pay the fee and a non-dust output, AddressError for a bad address."""
    if not slots:
        raise ValueError("nothing to refund: no slots given")
    payee = parse_address(to_address, network)
    total = sum(slot.satoshis for slot in slots)
    fee = refund_fee(len(slots), fee_rate)
    if total - fee < DUST:
        raise InsufficientFundsError(fee + DUST, total, "the refunded slots")
    return UnsignedRefund(tuple(slots), payee.locking_script(), total - fee)


def build_refund(
    slots: Sequence[Utxo],
    admin: Key,
    to_address: str,
    *,
    fee_rate: FeeRate,
    network: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> BuiltTransaction:
    """Sweep unused `slots` (any models, any digits) through the admin branch to one P2PKH address, signed
    here with the admin key: the same refund `prepare_refund` gives an offline signer."""
    unsigned = prepare_refund(slots, to_address, fee_rate=fee_rate, network=network)
    signatures = [admin.sign_preimage(preimage) for preimage in unsigned.admin_preimages()]
    return unsigned.sign(signatures, fee_rate=fee_rate, policy=policy)
