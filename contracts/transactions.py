"""Transaction builders: pay from a P2PKH wallet, deploy reward slots, claim one, refund or migrate the rest.

Every builder ends in `contracts.txverify.verify_transaction` (each input through the interpreter, policy,
fee at the configured rate) and returns a `BuiltTransaction` only if that passes: a transaction that fails
verification never leaves this module, and the error names the input and why. Transactions are version 1
(strict checks), inputs are signed SIGHASH_ALL|FORKID, and bsv-sdk is used only to serialize, compute
sighash preimages and run the VM, never to reach a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bsv import Transaction, TransactionInput
from bsv.script.script import Script

from contracts.address import parse_address
from contracts.chain import Utxo
from contracts.errors import InsufficientFundsError, VerificationError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.txverify import (
    MAX_TX_BYTES,
    SpentOutput,
    TxCheck,
    output,
    parse_transaction,
    verify_transaction,
)

TX_VERSION = 1
# Upper bounds used before signing: a low-S DER signature is at most 72 bytes (+1 sighash byte).
MAX_SIGNATURE_PUSH = 1 + 73
P2PKH_UNLOCKING_MAX = MAX_SIGNATURE_PUSH + 1 + 33
P2PKH_OUTPUT_BYTES = 8 + 1 + 25
DUST = 1  # BSV relays 1-sat outputs; a smaller change is left to the fee


def push_data(data: bytes) -> bytes:
    """A direct push (signatures and public keys are always 1..75 bytes)."""
    if not 0 < len(data) <= 75:
        raise ValueError(f"a direct push holds 1 to 75 bytes, not {len(data)}")
    return bytes([len(data)]) + data


def varint_size(value: int) -> int:
    return 1 if value < 0xFD else 3 if value <= 0xFFFF else 5 if value <= 0xFFFFFFFF else 9


def input_bytes(unlocking_size: int) -> int:
    return 32 + 4 + varint_size(unlocking_size) + unlocking_size + 4


def output_bytes(script_size: int) -> int:
    return 8 + varint_size(script_size) + script_size


def tx_bytes(input_sizes: Sequence[int], output_sizes: Sequence[int]) -> int:
    """Serialized size of a transaction with unlocking scripts and locking scripts of these sizes."""
    return (
        4
        + varint_size(len(input_sizes))
        + sum(input_bytes(size) for size in input_sizes)
        + varint_size(len(output_sizes))
        + sum(output_bytes(size) for size in output_sizes)
        + 4
    )


@dataclass(frozen=True)
class BuiltTransaction:
    """A signed, verified transaction, ready to broadcast."""

    kind: str  # "payment", "deploy", "claim", "refund", "migrate"
    raw: bytes
    check: TxCheck
    spent: tuple[Utxo, ...]
    # Outputs that are reward slots, as the UTXOs they become once broadcast.
    slots: tuple[Utxo, ...] = field(default=())

    @property
    def txid(self) -> str:
        return self.check.txid

    @property
    def size(self) -> int:
        return self.check.size

    @property
    def fee(self) -> int:
        return self.check.fee

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def outputs(self) -> list[Utxo]:
        tx = parse_transaction(self.raw)
        return [
            Utxo(self.txid, vout, out.satoshis, out.locking_script.serialize())
            for vout, out in enumerate(tx.outputs)
        ]


def unsigned_input(utxo: Utxo) -> TransactionInput:
    """An input spending `utxo`, carrying the spent amount and script the sighash preimage commits to."""
    tx_input = TransactionInput(source_txid=utxo.txid, source_output_index=utxo.vout)
    tx_input.satoshis = utxo.satoshis
    tx_input.locking_script = Script(utxo.script)
    return tx_input


def signature(tx: Transaction, index: int, key: Key) -> bytes:
    """`key`'s SIGHASH_ALL|FORKID signature of input `index` (BIP143 preimage over the spent script)."""
    return key.sign_preimage(tx.preimage(index))


def p2pkh_unlocking(tx: Transaction, index: int, key: Key) -> bytes:
    return push_data(signature(tx, index, key)) + push_data(key.public_key)


def finish(
    kind: str, tx: Transaction, spent: Sequence[Utxo], fee_rate: FeeRate, slots: int = 0
) -> BuiltTransaction:
    """Verify the signed `tx`; return it only if every input, the policy and the fee pass."""
    raw = tx.serialize()
    check = verify_transaction(raw, [SpentOutput(u.satoshis, u.script) for u in spent], fee_rate=fee_rate)
    slot_utxos = tuple(
        Utxo(check.txid, vout, tx.outputs[vout].satoshis, tx.outputs[vout].locking_script.serialize())
        for vout in range(slots)
    )
    return BuiltTransaction(kind, raw, check, tuple(spent), slot_utxos)


def fund_outputs(
    kind: str,
    outputs: Sequence[tuple[bytes, int]],
    funding: Sequence[Utxo],
    key: Key,
    *,
    fee_rate: FeeRate,
    change_script: bytes | None = None,
    slots: int = 0,
) -> BuiltTransaction:
    """A transaction paying `outputs` from P2PKH `funding` coins of `key` (largest first), change to
    `change_script` (default: back to the key). The first `slots` outputs are reward slots."""
    change_script = change_script if change_script is not None else key.locking_script()
    wanted = sum(satoshis for _, satoshis in outputs)
    script_sizes = [len(script) for script, _ in outputs]
    chosen: list[Utxo] = []
    for coin in sorted(funding, key=lambda utxo: utxo.satoshis, reverse=True):
        chosen.append(coin)
        total = sum(utxo.satoshis for utxo in chosen)
        size = tx_bytes([P2PKH_UNLOCKING_MAX] * len(chosen), [*script_sizes, len(change_script)])
        if total >= wanted + fee_rate.fee_for(size):
            break
    else:
        size = tx_bytes([P2PKH_UNLOCKING_MAX] * max(len(chosen), 1), [*script_sizes, len(change_script)])
        available = sum(utxo.satoshis for utxo in chosen)
        raise InsufficientFundsError(wanted + fee_rate.fee_for(size), available, key.address)
    change = total - wanted - fee_rate.fee_for(size)
    tx_outputs = [output(script, satoshis) for script, satoshis in outputs]
    if change >= DUST:
        tx_outputs.append(output(change_script, change))
    tx = Transaction([unsigned_input(coin) for coin in chosen], tx_outputs, version=TX_VERSION)
    sign_p2pkh_inputs(tx, key)
    return finish(kind, tx, chosen, fee_rate, slots=slots)


def sign_p2pkh_inputs(tx: Transaction, key: Key) -> None:
    # Unlocking scripts are not part of the BIP143 preimage, so signing in any order is safe.
    unlocking = [p2pkh_unlocking(tx, index, key) for index in range(len(tx.inputs))]
    for tx_input, script in zip(tx.inputs, unlocking, strict=True):
        tx_input.unlocking_script = Script(script)


def build_payment(
    funding: Sequence[Utxo], key: Key, to_address: str, satoshis: int, *, fee_rate: FeeRate
) -> BuiltTransaction:
    """Pay `satoshis` to a P2PKH address from `key`'s coins."""
    payee = parse_address(to_address)
    return fund_outputs("payment", [(payee.locking_script(), satoshis)], funding, key, fee_rate=fee_rate)


__all__ = [
    "MAX_TX_BYTES",
    "BuiltTransaction",
    "VerificationError",
    "build_payment",
    "fund_outputs",
    "tx_bytes",
]
