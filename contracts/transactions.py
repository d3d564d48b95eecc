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
from typing import Any

import numpy as np
from bsv import Transaction, TransactionInput
from bsv.script.script import Script

from contracts import unsigned_json
from contracts.address import parse_address
from contracts.chain import Utxo
from contracts.errors import InsufficientFundsError, PolicyError, TransactionTooLargeError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.numbers import push_data
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.slot import DeployableSlot, SlotContract
from contracts.txverify import (
    SpentOutput,
    TxCheck,
    output,
    parse_transaction,
    verify_transaction,
)
from contracts.wire import (
    MAX_SIGNATURE_PUSH,
    P2PKH_SCRIPT_BYTES,
    P2PKH_UNLOCKING_MAX,
    input_bytes,
    tx_bytes,
)

TX_VERSION = 1
# Upper bounds used before signing: a low-S DER signature is at most 72 bytes (+1 sighash byte).
DUST = 1  # BSV relays 1-sat outputs; a smaller change is left to the fee


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
    contract: DeployableSlot, funding_inputs: int, policy: Policy = DEFAULT_POLICY
) -> int:
    """How many slots fit in one deploy transaction under the policy's size limit."""
    overhead = (
        tx_bytes([P2PKH_UNLOCKING_MAX] * funding_inputs, [P2PKH_SCRIPT_BYTES]) + 8
    )  # + varint growth of the output count
    fit = (policy.max_transaction_bytes - overhead) // contract.slot_output_bytes
    if fit < 1:
        raise PolicyError(f"one slot ({contract.slot_output_bytes} bytes) does not fit in a transaction")
    return int(fit)


def build_deploy(
    contract: DeployableSlot,
    reward: int,
    count: int,
    funding: Sequence[Utxo],
    funder: Key,
    *,
    fee_rate: FeeRate,
    change_address: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> list[BuiltTransaction]:
    """Fund `count` slots of `reward + claim fee` each (a batch slot: K rewards + its claim fee) from
    `funder`'s P2PKH coins. Split into a chain of
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
    lock_time: int = 0,
) -> Transaction:
    """The signed claim transaction, NOT verified: use `build_claim`. (Exposed so tests and the demo can
    show that the ledger rejects what the builder would have refused.)"""
    payee = parse_address(payout_address, network)
    tx = Transaction(
        [unsigned_input(slot)],
        [output(payee.locking_script(), payout)],
        version=TX_VERSION,
        locktime=lock_time,
    )
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
    lock_time: int = 0,
) -> BuiltTransaction:
    """Spend `slot` paying the reward (default: the slot minus its reserved claim fee) to `payout_address`.
    A claim is deterministic (RFC 6979 signatures): the same arguments give the same bytes. `lock_time`
    (final whatever its value: the input's sequence is final) gives the same payment other bytes, for a claim
    tried again after the network refused the first one.

    Raises ImageError for a malformed image, AddressError for a bad address, and VerificationError when the
    script rejects the image (it does not classify as the contract's digit): nothing is returned then."""
    payout = reward if reward is not None else slot.satoshis - contract.claim_fee(fee_rate)
    if payout < 1:
        raise ValueError(f"slot {slot.txid}:{slot.vout} holds {slot.satoshis} sat, too little to pay a claim")
    tx = assemble_claim(
        slot, contract, pixels, payout_address, operator, payout=payout, network=network, lock_time=lock_time
    )
    return finish("claim", tx, [slot], fee_rate, policy=policy)


REFUND_UNLOCKING_MAX = MAX_SIGNATURE_PUSH + 1


@dataclass(frozen=True)
class UnsignedMigration:
    """A migration before its signatures. The first `admin_inputs` inputs spend old slots through the admin
    branch (the admin signs their preimages, on this machine or offline); the others are P2PKH coins of the
    funder. The first `slots` outputs are the new slots. Rebuilding the transaction from these fields gives
    the same preimages every time, so signatures made later still fit."""

    spent: tuple[Utxo, ...]
    outputs: tuple[tuple[bytes, int], ...]
    admin_inputs: int
    slots: int

    def transaction(self) -> Transaction:
        """The unsigned transaction (every input carries the amount and script its preimage commits to)."""
        return Transaction(
            [unsigned_input(utxo) for utxo in self.spent],
            [output(script, satoshis) for script, satoshis in self.outputs],
            version=TX_VERSION,
        )

    def admin_preimages(self) -> list[bytes]:
        """The BIP143 preimage of each admin-branch input, in input order: what the admin signs."""
        tx = self.transaction()
        return [tx.preimage(index) for index in range(self.admin_inputs)]

    def sign(
        self,
        admin_signatures: Sequence[bytes],
        funder: Key | None = None,
        *,
        fee_rate: FeeRate,
        policy: Policy = DEFAULT_POLICY,
    ) -> BuiltTransaction:
        """Put the admin's signatures (one per old slot) in place, sign the funding coins with `funder`, and
        verify the whole transaction like every builder; a wrong signature raises VerificationError."""
        if len(admin_signatures) != self.admin_inputs:
            raise ValueError(f"expected {self.admin_inputs} admin signature(s), got {len(admin_signatures)}")
        funded = len(self.spent) - self.admin_inputs
        if funded and funder is None:
            raise ValueError(f"{funded} funding input(s) need the funder's key")
        tx = self.transaction()
        unlocking = [SlotContract.refund_unlocking(sig) for sig in admin_signatures]
        if funder is not None:
            unlocking += [p2pkh_unlocking(tx, i, funder) for i in range(self.admin_inputs, len(self.spent))]
        for tx_input, script in zip(tx.inputs, unlocking, strict=True):
            tx_input.unlocking_script = Script(script)
        return finish("migrate", tx, self.spent, fee_rate, slots=self.slots, policy=policy)

    def to_json(self) -> dict[str, Any]:
        """What `from_json` reads back into the same migration (so the same preimages): see
        `contracts.unsigned_json`."""
        body = unsigned_json.encode(self.spent, self.outputs)
        return {"kind": "migration", "admin_inputs": self.admin_inputs, "slots": self.slots, **body}

    @classmethod
    def from_json(cls, data: Any) -> UnsignedMigration:
        """The migration `to_json` wrote; ValueError for anything else."""
        if not isinstance(data, dict) or data.get("kind") != "migration":
            raise ValueError("not an unsigned migration")
        spent, outputs = unsigned_json.decode(data)
        admin_inputs, slots = data.get("admin_inputs"), data.get("slots")
        if not isinstance(admin_inputs, int) or not 0 < admin_inputs <= len(spent):
            raise ValueError(f"admin_inputs must count some of the {len(spent)} inputs, not {admin_inputs!r}")
        if not isinstance(slots, int) or not 0 < slots <= len(outputs):
            raise ValueError(f"slots must count some of the {len(outputs)} outputs, not {slots!r}")
        return cls(spent, outputs, admin_inputs, slots)


def migration_slots_per_transaction(
    contract: SlotContract, funding_inputs: int = 8, policy: Policy = DEFAULT_POLICY
) -> int:
    """How many old slots (each becoming one new slot of `contract`) fit in one migration transaction,
    leaving room for `funding_inputs` funding coins and the change."""
    per_slot = contract.slot_output_bytes + input_bytes(REFUND_UNLOCKING_MAX)
    room = (
        policy.max_transaction_bytes
        - tx_bytes([P2PKH_UNLOCKING_MAX] * funding_inputs, [P2PKH_SCRIPT_BYTES])
        - 16
    )
    return max(1, room // per_slot)


def prepare_migration(
    slots: Sequence[Utxo],
    new_contract: SlotContract,
    reward: int,
    change_address: str,
    *,
    fee_rate: FeeRate,
    count: int | None = None,
    funding: Sequence[Utxo] | None = None,
    network: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> UnsignedMigration:
    """The unsigned migration of `slots` into new slots of `new_contract`, change to `change_address`.

    Without `funding`, the old slots' money alone pays: as many new slots as it and the size limit allow (or
    `count`). With `funding` (P2PKH coins, possibly none), each old slot becomes one new slot (or `count` in
    all) and coins are added, largest first, until they pay for the new slots and the fee;
    InsufficientFundsError when all of them do not."""
    if not slots:
        raise ValueError("nothing to migrate: no slots given")
    change = parse_address(change_address, network).locking_script()
    value = new_contract.slot_value(reward, fee_rate)
    script = new_contract.locking_script

    def size(slot_count: int, coins: int) -> int:
        inputs = [REFUND_UNLOCKING_MAX] * len(slots) + [P2PKH_UNLOCKING_MAX] * coins
        return tx_bytes(inputs, [len(script)] * slot_count + [len(change)])

    chosen: list[Utxo] = []
    if funding is not None:
        wanted = len(slots) if count is None else count
        if wanted < 1:
            raise ValueError(f"a migration makes at least one slot, not {wanted}")
        coins = sorted(funding, key=lambda utxo: utxo.satoshis, reverse=True)
        while True:
            total = sum(u.satoshis for u in slots) + sum(u.satoshis for u in chosen)
            needed = wanted * value + fee_rate.fee_for(size(wanted, len(chosen)))
            if total >= needed:
                break
            if len(chosen) == len(coins):
                raise InsufficientFundsError(needed, total, "the migrated slots and the funding coins")
            chosen.append(coins[len(chosen)])
        if size(wanted, len(chosen)) > policy.max_transaction_bytes:
            raise TransactionTooLargeError(
                f"{wanted} new slots make a {size(wanted, len(chosen)):,}-byte transaction, over the "
                f"{policy.max_transaction_bytes:,}-byte policy limit: migrate fewer slots at a time"
            )
    else:
        total = sum(slot.satoshis for slot in slots)
        size_limit = (
            policy.max_transaction_bytes
            - tx_bytes([REFUND_UNLOCKING_MAX] * len(slots), [P2PKH_SCRIPT_BYTES])
            - 8
        ) // (new_contract.slot_output_bytes)
        affordable = 0
        while (
            affordable < size_limit
            and (affordable + 1) * value + fee_rate.fee_for(size(affordable + 1, 0)) <= total
        ):
            affordable += 1
        wanted = affordable if count is None else count
        if wanted < 1 or wanted > affordable:
            needed = max(wanted, 1) * value + fee_rate.fee_for(size(max(wanted, 1), 0))
            raise InsufficientFundsError(needed, total, "the migrated slots")
    outputs = [(script, value)] * wanted
    rest = total - wanted * value - fee_rate.fee_for(size(wanted, len(chosen)))
    if rest >= DUST:
        outputs.append((change, rest))
    return UnsignedMigration((*slots, *chosen), tuple(outputs), admin_inputs=len(slots), slots=wanted)


def build_migration(
    slots: Sequence[Utxo],
    admin: Key,
    new_contract: SlotContract,
    reward: int,
    change_address: str,
    *,
    fee_rate: FeeRate,
    count: int | None = None,
    funding: tuple[Sequence[Utxo], Key] | None = None,
    network: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> BuiltTransaction:
    """Move unused `slots` into new slots of `new_contract` (a newer model) in one transaction, signed by
    `admin` and verified. Without `funding` the old slots' money alone pays (as many new slots as it allows,
    or `count`); with `funding=(coins, funder)` the funder's P2PKH coins top it up so that every old slot
    becomes a new one (or `count`). The rest goes to `change_address`. See `prepare_migration`."""
    coins, funder = funding if funding is not None else (None, None)
    unsigned = prepare_migration(
        slots, new_contract, reward, change_address, fee_rate=fee_rate, count=count, funding=coins,
        network=network, policy=policy,
    )  # fmt: skip
    tx = unsigned.transaction()
    admin_signatures = [signature(tx, index, admin) for index in range(unsigned.admin_inputs)]
    return unsigned.sign(admin_signatures, funder, fee_rate=fee_rate, policy=policy)
