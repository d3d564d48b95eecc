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

import numpy as np
from bsv import Transaction, TransactionInput
from bsv.script.script import Script

from contracts.address import parse_address
from contracts.chain import Utxo
from contracts.errors import InsufficientFundsError, PolicyError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.slot import SlotContract
from contracts.txverify import (
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
    kind: str,
    tx: Transaction,
    spent: Sequence[Utxo],
    fee_rate: FeeRate,
    slots: int = 0,
    policy: Policy = DEFAULT_POLICY,
) -> BuiltTransaction:
    """Verify the signed `tx`; return it only if every input, the policy and the fee pass."""
    raw = tx.serialize()
    sources = [SpentOutput(u.satoshis, u.script) for u in spent]
    check = verify_transaction(raw, sources, fee_rate=fee_rate, policy=policy)
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
    policy: Policy = DEFAULT_POLICY,
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
    return finish(kind, tx, chosen, fee_rate, slots=slots, policy=policy)


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


# -- reward slots -------------------------------------------------------------------------------------------


def slots_per_transaction(
    contract: SlotContract, funding_inputs: int, policy: Policy = DEFAULT_POLICY
) -> int:
    """How many slots fit in one deploy transaction under the policy's size limit."""
    overhead = (
        tx_bytes([P2PKH_UNLOCKING_MAX] * funding_inputs, [25]) + 8
    )  # + varint growth of the output count
    fit = (policy.max_transaction_bytes - overhead) // contract.slot_output_bytes
    if fit < 1:
        raise PolicyError(f"one slot ({contract.slot_output_bytes} bytes) does not fit in a transaction")
    return int(fit)


def build_deploy(
    contract: SlotContract,
    reward: int,
    count: int,
    funding: Sequence[Utxo],
    funder: Key,
    *,
    fee_rate: FeeRate,
    change_address: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> list[BuiltTransaction]:
    """Fund `count` slots of `reward + claim fee` each from `funder`'s P2PKH coins. Split into a chain of
    transactions (each spending the previous one's change) when the slots exceed the policy's size limit.
    Broadcast them in order; `BuiltTransaction.slots` lists the slot outpoints."""
    if reward < 1 or count < 1:
        raise ValueError(f"a deploy needs a positive reward and slot count, got {reward} x {count}")
    value = contract.slot_value(reward, fee_rate)
    change_script = (
        parse_address(change_address).locking_script() if change_address else funder.locking_script()
    )
    per_tx = slots_per_transaction(contract, len(funding), policy)
    built: list[BuiltTransaction] = []
    coins = list(funding)
    remaining = count
    while remaining:
        chunk = min(per_tx, remaining)
        tx = fund_outputs(
            "deploy",
            [(contract.locking_script, value)] * chunk,
            coins,
            funder,
            fee_rate=fee_rate,
            change_script=change_script,
            slots=chunk,
            policy=policy,
        )
        built.append(tx)
        remaining -= chunk
        used = {(u.txid, u.vout) for u in tx.spent}
        coins = [c for c in coins if (c.txid, c.vout) not in used]
        if remaining and len(tx.outputs()) > chunk:
            coins.append(tx.outputs()[chunk])  # the change, spendable unconfirmed
    return built


def assemble_claim(
    slot: Utxo,
    contract: SlotContract,
    pixels: np.ndarray,
    payout_address: str,
    operator: Key,
    *,
    payout: int,
    network: str | None = None,
) -> Transaction:
    """The signed claim transaction, NOT verified: use `build_claim`. (Exposed so tests and the demo can
    show that the ledger rejects what the builder would have refused.)"""
    payee = parse_address(payout_address, network)
    tx = Transaction([unsigned_input(slot)], [output(payee.locking_script(), payout)], version=TX_VERSION)
    operator_signature = signature(tx, 0, operator)
    tx.inputs[0].unlocking_script = Script(contract.claim_unlocking(operator_signature, pixels))
    return tx


def build_claim(
    slot: Utxo,
    contract: SlotContract,
    pixels: np.ndarray,
    payout_address: str,
    operator: Key,
    *,
    fee_rate: FeeRate,
    reward: int | None = None,
    network: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> BuiltTransaction:
    """Spend `slot` paying the reward (default: the slot minus its reserved claim fee) to `payout_address`.

    Raises ImageError for a malformed image, AddressError for a bad address, and VerificationError when the
    script rejects the image (it does not classify as the contract's digit): nothing is returned then."""
    payout = reward if reward is not None else slot.satoshis - contract.claim_fee(fee_rate)
    if payout < 1:
        raise ValueError(f"slot {slot.txid}:{slot.vout} holds {slot.satoshis} sat, too little to pay a claim")
    tx = assemble_claim(slot, contract, pixels, payout_address, operator, payout=payout, network=network)
    return finish("claim", tx, [slot], fee_rate, policy=policy)


def _sign_admin_inputs(tx: Transaction, admin: Key) -> None:
    unlocking = [
        SlotContract.refund_unlocking(signature(tx, index, admin)) for index in range(len(tx.inputs))
    ]
    for tx_input, script in zip(tx.inputs, unlocking, strict=True):
        tx_input.unlocking_script = Script(script)


REFUND_UNLOCKING_MAX = MAX_SIGNATURE_PUSH + 1


def build_refund(
    slots: Sequence[Utxo],
    admin: Key,
    to_address: str,
    *,
    fee_rate: FeeRate,
    network: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> BuiltTransaction:
    """Sweep unused `slots` (any models, any digits) through the admin branch to one P2PKH address."""
    if not slots:
        raise ValueError("nothing to refund: no slots given")
    payee = parse_address(to_address, network)
    total = sum(slot.satoshis for slot in slots)
    fee = fee_rate.fee_for(tx_bytes([REFUND_UNLOCKING_MAX] * len(slots), [25]))
    if total - fee < DUST:
        raise InsufficientFundsError(fee + DUST, total, "the refunded slots")
    tx = Transaction(
        [unsigned_input(slot) for slot in slots],
        [output(payee.locking_script(), total - fee)],
        version=TX_VERSION,
    )
    _sign_admin_inputs(tx, admin)
    return finish("refund", tx, slots, fee_rate, policy=policy)


def build_migration(
    slots: Sequence[Utxo],
    admin: Key,
    new_contract: SlotContract,
    reward: int,
    change_address: str,
    *,
    fee_rate: FeeRate,
    count: int | None = None,
    network: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> BuiltTransaction:
    """Move unused `slots` into new slots of `new_contract` (a newer model) in one transaction: as many
    as the money and the size limit allow (or `count`), the rest to `change_address`."""
    if not slots:
        raise ValueError("nothing to migrate: no slots given")
    change = parse_address(change_address, network).locking_script()
    total = sum(slot.satoshis for slot in slots)
    value = new_contract.slot_value(reward, fee_rate)
    script = new_contract.locking_script

    def fee_for(slot_count: int) -> int:
        sizes = [len(script)] * slot_count + [len(change)]
        return fee_rate.fee_for(tx_bytes([REFUND_UNLOCKING_MAX] * len(slots), sizes))

    size_limit = (policy.max_transaction_bytes - tx_bytes([REFUND_UNLOCKING_MAX] * len(slots), [25]) - 8) // (
        new_contract.slot_output_bytes
    )
    affordable = 0
    while affordable < size_limit and (affordable + 1) * value + fee_for(affordable + 1) <= total:
        affordable += 1
    wanted = affordable if count is None else count
    if wanted < 1 or wanted > affordable:
        raise InsufficientFundsError(
            max(wanted, 1) * value + fee_for(max(wanted, 1)), total, "the migrated slots"
        )
    outputs = [output(script, value) for _ in range(wanted)]
    rest = total - wanted * value - fee_for(wanted)
    if rest >= DUST:
        outputs.append(output(change, rest))
    tx = Transaction([unsigned_input(slot) for slot in slots], outputs, version=TX_VERSION)
    _sign_admin_inputs(tx, admin)
    return finish("migrate", tx, slots, fee_rate, slots=wanted, policy=policy)
