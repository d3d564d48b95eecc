"""The service's one door to `contracts`' chain code: backends, addresses, wallet, transaction builders.

Everything the service asks of a blockchain goes through here, so a change in `contracts` is a change in
this module only. Outcomes are types: `DoubleSpend` (an input spent by a competitor, whose txids it carries
when the network named them), `TransactionRejected` (refused for good), `ChainUnavailable` (try again), all
`ChainError`s; a status is a `TxState`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

from bounty import keys
from contracts import refunds, transactions, vm
from contracts.address import address_from_hash160, hash160_of_p2pkh_script, parse_address, sha256d
from contracts.arc import parse_tx_status
from contracts.batch_slot import BatchSlotContract
from contracts.batch_transactions import BatchClaimEntry, build_batch_claim
from contracts.chain import ChainBackend, TxState, TxStatus, Utxo
from contracts.errors import (
    AddressError,
    ChainError,
    ChainUnavailable,
    ContractsError,
    DoubleSpend,
    TransactionNotFound,
    TransactionRejected,
    VerificationError,
)
from contracts.fees import FeeRate
from contracts.model import IntegerModel
from contracts.refunds import UnsignedRefund
from contracts.slot import SlotContract
from contracts.transactions import BuiltTransaction, UnsignedMigration
from contracts.txverify import parse_transaction

if TYPE_CHECKING:
    from bounty.models import Bounty, ModelVersion, Slot

log = logging.getLogger(__name__)

__all__ = [
    "BuiltTransaction",
    "ChainError",
    "ChainUnavailable",
    "ContractsError",
    "DoubleSpend",
    "SlotContract",
    "TransactionNotFound",
    "TransactionRejected",
    "TxState",
    "TxStatus",
    "UnsignedMigration",
    "UnsignedRefund",
    "Utxo",
    "sha256d",
]


def address_problem(text: str) -> str | None:
    """None when `text` is a P2PKH address of the configured network, else what is wrong, in plain words."""
    if not text:
        return "Enter the BSV address the reward should be paid to."
    try:
        parse_address(text, settings.NETWORK)
    except AddressError as error:
        return f"Not a valid address: {error.reason}."
    return None


def fee_rate(satoshis_per_kb: int | None = None) -> FeeRate:
    """The fee rate of `satoshis_per_kb` (a bounty's), or the one configured now."""
    return FeeRate(settings.FEE_RATE if satoshis_per_kb is None else satoshis_per_kb)


@functools.cache
def backend() -> ChainBackend:
    if settings.CHAIN_BACKEND == "local":
        from contracts.ledger import LocalLedger

        return LocalLedger(settings.LEDGER_DIR, fee_rate=fee_rate(), network=settings.NETWORK)
    from contracts.arc import ARC_DEFAULT_URLS, WOC_DEFAULT_URLS, ArcBackend

    network = "testnet" if settings.NETWORK == "regtest" else settings.NETWORK
    return ArcBackend(
        settings.ARC_URL or ARC_DEFAULT_URLS[network],
        settings.WOC_URL or WOC_DEFAULT_URLS[network],
        api_key=settings.ARC_API_KEY,
        woc_api_key=settings.WOC_API_KEY,
        timeout=settings.CHAIN_TIMEOUT,
        callback_url=settings.ARC_CALLBACK_URL or None,
        callback_token=settings.ARC_CALLBACK_TOKEN,
    )


def reset() -> None:
    """Forget the backend (settings changed); compiled contracts stay cached, keyed by their inputs."""
    backend.cache_clear()


def ping() -> int:
    """The best block height; raises when the backend cannot be reached."""
    return backend().height()


def broadcast(raw_hex: str, parents: Mapping[str, bytes] | None = None) -> str:
    """Broadcast; `parents` (txid -> raw) are the spent transactions we hold, so ARC gets Extended
    Format. Raises DoubleSpend, TransactionRejected or ChainUnavailable."""
    return backend().broadcast(bytes.fromhex(raw_hex), parents or {})


def broadcast_many(
    raw_hexes: list[str], parents: Mapping[str, bytes] | None = None
) -> list[str | ChainError]:
    """Several transactions in one request; per transaction its txid or its error (see `broadcast`)."""
    return backend().broadcast_many([bytes.fromhex(raw) for raw in raw_hexes], parents or {})


def status(txid: str) -> TxStatus:
    return backend().status(txid)


def spender(txid: str, vout: int) -> str | None:
    """Who spent output `vout` of `txid` (mempool or block), or None while it is unspent."""
    return backend().spender(txid, vout)


def get_transaction(txid: str) -> str:
    """The raw transaction in hex; TransactionNotFound if the backend does not know it."""
    return backend().get_transaction(txid).hex()


def input_txids(raw_hex: str) -> list[str]:
    return [tx_input.source_txid for tx_input in parse_transaction(bytes.fromhex(raw_hex)).inputs]


def pays(raw_hex: str, outpoint: tuple[str, int], address: str, satoshis: int) -> bool:
    """Whether the transaction spends `outpoint` and pays `address` at least `satoshis`: a competitor of one
    of our claims that pays the same contributor the same reward is that contributor's payment."""
    try:
        tx = parse_transaction(bytes.fromhex(raw_hex))
    except VerificationError:
        return False
    spends = any((i.source_txid, i.source_output_index) == outpoint for i in tx.inputs)
    payee = parse_address(address).locking_script()
    paid = sum(o.satoshis for o in tx.outputs if o.locking_script.serialize() == payee)
    return spends and paid >= satoshis


def read_callback(body: object) -> TxStatus:
    """The status an ARC callback reports; ValueError when the body is not one."""
    return parse_tx_status(body)


def wallet_balance(address: str) -> int:
    return sum(utxo.satoshis for utxo in backend().utxos(address))


def faucet(address: str, satoshis: int) -> str:
    """Fund an address on the local ledger (development only)."""
    ledger = backend()
    if not hasattr(ledger, "fund"):
        raise ChainError("the faucet exists only on the local ledger", permanent=True)
    return ledger.fund(address, satoshis)


def mine(blocks: int = 1) -> list[int]:
    """Mine blocks on the local ledger (tests and the demo)."""
    ledger = backend()
    if not hasattr(ledger, "mine"):
        raise ChainError("only the local ledger mines on demand", permanent=True)
    return ledger.mine(blocks)


# -- keys and wallet --------------------------------------------------------------------------------------


def operator_address() -> str:
    return keys.operator_key().address


def public_keys() -> tuple[str, str]:
    """The operator's and the admin's public keys (hex) that a new bounty's slots are locked to."""
    return keys.operator_key().public_key.hex(), keys.admin_public_key()


def address_of_script(script: bytes) -> str | None:
    """The P2PKH address `script` pays on the configured network, or None for any other script."""
    hash160 = hash160_of_p2pkh_script(script)
    return address_from_hash160(hash160, settings.NETWORK) if hash160 else None


def describe(raw_hex: str) -> tuple[list[tuple[str, int, int]], list[tuple[int, int, str]]]:
    """Inputs (txid, vout, unlocking bytes) and outputs (index, satoshis, kind), for the admin's explorer."""
    tx = parse_transaction(bytes.fromhex(raw_hex))
    inputs = [
        (
            i.source_txid,
            i.source_output_index,
            len(i.unlocking_script.serialize()) if i.unlocking_script else 0,
        )
        for i in tx.inputs
    ]
    outputs = []
    for index, out in enumerate(tx.outputs):
        script = out.locking_script.serialize()
        address = address_of_script(script)
        kind = f"pays {address}" if address else f"contract, {len(script):,} bytes"
        outputs.append((index, out.satoshis, kind))
    return inputs, outputs


# -- slot contracts, costs and builders --------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """A verified transaction as the service stores it; `slots` are (vout, satoshis) of reward slots."""

    txid: str
    raw_hex: str
    fee: int
    size: int
    slots: tuple[tuple[int, int], ...] = ()


def _built(tx: BuiltTransaction) -> Built:
    slots = tuple((utxo.vout, utxo.satoshis) for utxo in tx.slots)
    return Built(txid=tx.txid, raw_hex=tx.hex, fee=tx.fee, size=tx.size, slots=slots)


@functools.lru_cache(maxsize=64)
def slot_contract(artifact: str, digit: int, operator_pubkey: str, admin_pubkey: str) -> SlotContract:
    """Compiling takes a moment, so each (model, digit, keys) is compiled once per process."""
    model = IntegerModel.load(artifact)
    return SlotContract.from_model(model, digit, bytes.fromhex(operator_pubkey), bytes.fromhex(admin_pubkey))


def bounty_contract(bounty: Bounty) -> SlotContract | BatchSlotContract:
    """The contract of the bounty's slots: single, or batch slots of K lanes (`Bounty.slot_kind`)."""
    if bounty.is_batch:
        return batch_slot_contract(
            bounty.model_version.artifact, bounty.digit, bounty.batch_lanes, bounty.operator_pubkey,
            bounty.admin_pubkey,
        )  # fmt: skip
    return slot_contract(
        bounty.model_version.artifact, bounty.digit, bounty.operator_pubkey, bounty.admin_pubkey
    )


def prepare_contract(bounty: Bounty) -> None:
    """Compile the bounty's contract and convert its locking script for the native VM, as its first claim
    in this process would (bounty.warmup does it before a worker takes tasks)."""
    vm.native_chunks(bounty_contract(bounty).locking_script)


def claim_fee(contract: SlotContract, rate: int) -> int:
    """What a slot of `contract` reserves for its claim's fee at `rate` sat/kB."""
    return contract.claim_fee(FeeRate(rate))


def claim_cost(version: ModelVersion, digit: int, rate: int, lanes: int = 0) -> dict[str, int]:
    """Claim fee per slot and on-chain bytes per paid image (slot output + claim transaction) at `rate`,
    cached on the model version; `lanes` K > 0 prices a batch slot, whose bytes are shared by K images."""
    key = f"{digit}@{rate}" + (f"x{lanes}" if lanes else "")
    if key in version.script_sizes:
        return dict(version.script_sizes[key])
    operator, admin = public_keys()
    contract: SlotContract | BatchSlotContract = (
        batch_slot_contract(version.artifact, digit, lanes, operator, admin)
        if lanes
        else slot_contract(version.artifact, digit, operator, admin)
    )
    cost = {
        "claim_fee": contract.claim_fee(FeeRate(rate)),
        "locking_bytes": len(contract.locking_script),
        "claim_bytes": contract.max_claim_tx_bytes,
        "bytes_per_paid_image": (contract.slot_output_bytes + contract.max_claim_tx_bytes) // max(lanes, 1),
    }
    version.script_sizes = {**version.script_sizes, key: cost}
    type(version).objects.filter(pk=version.pk).update(script_sizes=version.script_sizes)
    return cost


def _permanent(error: ContractsError) -> ChainError:
    """Builder errors (the script rejects the image, a bad address) can never succeed on retry."""
    if isinstance(error, ChainError):
        return error
    return ChainError(str(error), permanent=True)


def build_deploy(bounty: Bounty) -> list[Built]:
    """Deploy transaction(s) creating the bounty's slots, funded from the operator wallet."""
    operator = keys.operator_key()
    funding = backend().utxos(operator.address)
    try:
        built = transactions.build_deploy(
            bounty_contract(bounty), bounty.reward, bounty.slot_count, funding, operator,
            fee_rate=FeeRate(bounty.fee_rate),
        )  # fmt: skip
    except ValueError as error:
        raise ContractsError(str(error)) from error
    return [_built(tx) for tx in built]


def build_claim(bounty: Bounty, slot: Slot, payout_address: str, pixels: bytes, lock_time: int = 0) -> Built:
    """The verified claim paying the bounty's reward from `slot` to `payout_address` for `pixels`; the same
    arguments give the same bytes, another `lock_time` other bytes for the same payment."""
    contract = bounty_contract(bounty)
    if not isinstance(contract, SlotContract):
        raise ChainError(f"bounty {bounty.pk} has batch slots: they are claimed in batches", permanent=True)
    utxo = Utxo(slot.deploy_txid, slot.vout, slot.satoshis, contract.locking_script)
    image = np.frombuffer(bytes(pixels), dtype=np.uint8).astype(np.int64)
    try:
        built = transactions.build_claim(
            utxo, contract, image, payout_address, keys.operator_key(),
            fee_rate=FeeRate(bounty.fee_rate), reward=bounty.reward, network=settings.NETWORK,
            lock_time=lock_time,
        )  # fmt: skip
    except (ContractsError, ValueError) as error:
        raise _permanent(ContractsError(str(error)) if isinstance(error, ValueError) else error) from error
    return _built(built)


def slot_utxos(contract: SlotContract | BatchSlotContract, slots: Sequence[Slot]) -> list[Utxo]:
    """The outputs `slots` are on the chain, locked by `contract`."""
    return [Utxo(s.deploy_txid, s.vout, s.satoshis, contract.locking_script) for s in slots]


# -- refunds: prepared, signed here (admin key on the server) or offline, verified ---------------------------


def prepare_refund(bounty: Bounty, slots: Sequence[Slot], to_address: str) -> UnsignedRefund:
    """The unsigned refund of `slots` to `to_address` at the bounty's fee rate; ContractsError when it
    cannot be built (too little money, a bad address)."""
    utxos = slot_utxos(bounty_contract(bounty), slots)
    try:
        return refunds.prepare_refund(
            utxos, to_address, fee_rate=FeeRate(bounty.fee_rate), network=settings.NETWORK
        )
    except ValueError as error:
        raise ContractsError(str(error)) from error


def sign_refund(bounty: Bounty, unsigned: UnsignedRefund, signatures: Sequence[bytes]) -> Built:
    """The refund with the admin's signatures in place, verified; ContractsError when it does not verify."""
    try:
        return _built(unsigned.sign(signatures, fee_rate=FeeRate(bounty.fee_rate)))
    except ValueError as error:
        raise ContractsError(str(error)) from error


def build_refund(bounty: Bounty, slots: list[Slot], to_address: str) -> Built:
    """Sweep `slots` through the admin branch to `to_address`, signed with the admin key on this server."""
    unsigned = prepare_refund(bounty, slots, to_address)
    admin = keys.admin_key()
    return sign_refund(bounty, unsigned, [admin.sign_preimage(p) for p in unsigned.admin_preimages()])


# -- migrations to another model ------------------------------------------------------------------------


def migration_groups(
    slots: Sequence[Slot], old: SlotContract, new: SlotContract
) -> list[tuple[list[Slot], list[Utxo]]]:
    """`slots` in groups that fit one migration transaction each, with the outputs they are."""
    chunk = transactions.migration_slots_per_transaction(new)
    groups = []
    for first in range(0, len(slots), chunk):
        group = list(slots[first : first + chunk])
        groups.append((group, slot_utxos(old, group)))
    return groups


def prepare_migration(
    bounty: Bounty, slots: Sequence[Utxo], new: SlotContract, funding: Sequence[Utxo]
) -> UnsignedMigration:
    """The unsigned migration of `slots` into new slots of `new`: each old slot becomes one new slot, the
    operator wallet's `funding` coins top it up (largest first), the change goes back to the wallet."""
    return transactions.prepare_migration(
        slots, new, bounty.reward, operator_address(), fee_rate=FeeRate(bounty.fee_rate), funding=funding,
        network=settings.NETWORK,
    )  # fmt: skip


def build_migration(
    bounty: Bounty, slots: Sequence[Utxo], new: SlotContract, funding: Sequence[Utxo]
) -> BuiltTransaction:
    """`prepare_migration` signed with the admin key on this server and the operator's key, verified."""
    operator = keys.operator_key()
    return transactions.build_migration(
        slots, keys.admin_key(), new, bounty.reward, operator.address, fee_rate=FeeRate(bounty.fee_rate),
        funding=(funding, operator), network=settings.NETWORK,
    )  # fmt: skip


def sign_migration(
    bounty: Bounty, unsigned: UnsignedMigration, admin_signatures: Sequence[bytes]
) -> BuiltTransaction:
    """A prepared migration with the admin's signatures in place and the wallet's coins signed, verified."""
    return unsigned.sign(admin_signatures, keys.operator_key(), fee_rate=FeeRate(bounty.fee_rate))


def operator_coins() -> list[Utxo]:
    """The operator wallet's spendable coins, as the backend reports them now."""
    return backend().utxos(operator_address())


# -- batch slots: K images checked and paid by one claim (docs/batch.md) ----------------------------------


@functools.lru_cache(maxsize=32)
def batch_slot_contract(
    artifact: str, digit: int, lanes: int, operator_pubkey: str, admin_pubkey: str
) -> BatchSlotContract:
    """Compiled once per process for each (model, digit, K, keys), as `slot_contract`."""
    return BatchSlotContract.from_model(
        integer_model(artifact), digit, lanes, bytes.fromhex(operator_pubkey), bytes.fromhex(admin_pubkey)
    )


@functools.lru_cache(maxsize=8)
def integer_model(artifact: str) -> IntegerModel:
    return IntegerModel.load(artifact)


@dataclass(frozen=True)
class BatchMember:
    submission_id: int
    pixels: bytes  # 784 uint8, row-major
    payout_address: str

    @property
    def image(self) -> np.ndarray:
        return np.frombuffer(self.pixels, dtype=np.uint8).astype(np.int64)


@dataclass(frozen=True)
class BatchBuild:
    """A built and verified batch claim (None when no member passed the off-chain check)."""

    built: Built | None
    paid: tuple[int, ...]  # submission ids; output i pays paid[i]
    excluded: tuple[int, ...]  # members the off-chain check refused: left out, never in the claim


def build_batch(
    bounty: Bounty, slot: Slot, members: Sequence[BatchMember], change_address: str, lock_time: int = 0
) -> BatchBuild:
    """The batch claim of `members` (1..K, oldest first) from the batch `slot`, after the off-chain check.

    Members the reference model does not read as the bounty's digit are left out before anything is packed,
    so one bad image never costs the others their payout (the script computes the same integers); the padded
    lanes' rewards and the unneeded reserved fee go to `change_address`. ChainError (permanent) when the
    batch cannot be paid."""
    contract = bounty_contract(bounty)
    if not isinstance(contract, BatchSlotContract):
        raise ChainError(f"bounty {bounty.pk} has single slots, not batch slots", permanent=True)
    if not 1 <= len(members) <= contract.lanes:
        raise ValueError(f"a batch of {contract.lanes} takes 1..{contract.lanes} members, got {len(members)}")
    model = integer_model(bounty.model_version.artifact)
    verdicts = [int(model.predict(m.image)) == contract.digit for m in members]
    accepted = [m for m, ok in zip(members, verdicts, strict=True) if ok]
    excluded = tuple(m.submission_id for m, ok in zip(members, verdicts, strict=True) if not ok)
    if not accepted:
        return BatchBuild(None, (), excluded)
    try:
        built = _batch_claim(bounty, contract, slot, accepted, change_address, lock_time)
    except (ContractsError, ValueError) as error:
        raise _permanent(ContractsError(str(error)) if isinstance(error, ValueError) else error) from error
    return BatchBuild(_built(built), tuple(m.submission_id for m in accepted), excluded)


def _batch_claim(
    bounty: Bounty,
    contract: BatchSlotContract,
    slot: Slot,
    members: Sequence[BatchMember],
    change: str,
    lock_time: int = 0,
) -> BuiltTransaction:
    utxo = Utxo(slot.deploy_txid, slot.vout, slot.satoshis, contract.locking_script)
    entries = [BatchClaimEntry(m.image, m.payout_address) for m in members]
    return build_batch_claim(
        utxo, contract, entries, keys.operator_key(), reward=bounty.reward, fee_rate=FeeRate(bounty.fee_rate),
        change_address=change, network=settings.NETWORK, lock_time=lock_time,
    )  # fmt: skip


def batch_offenders(bounty: Bounty, slot: Slot, members: Sequence[BatchMember]) -> tuple[int, ...]:
    """The members whose image the script refuses on its own (each checked alone, padded with copies of
    itself, in the VM): what a batch the chain refused is rebuilt without. Nothing is broadcast."""
    contract = bounty_contract(bounty)
    assert isinstance(contract, BatchSlotContract)
    offenders = []
    for member in members:
        try:
            _batch_claim(bounty, contract, slot, [member], operator_address())
        except (ContractsError, ValueError):
            offenders.append(member.submission_id)
    return tuple(offenders)


def pays_members(raw_hex: str, outpoint: tuple[str, int], addresses: Sequence[str], satoshis: int) -> bool:
    """Whether the transaction spends `outpoint` and pays each of `addresses` at least `satoshis` (an
    address listed twice is owed twice): a claim holding a batch slot that does is the batch's payment,
    whoever built it (a copy with other image pushes pays the same outputs, since the signature covers
    them)."""
    try:
        tx = parse_transaction(bytes.fromhex(raw_hex))
    except VerificationError:
        return False
    if not any((i.source_txid, i.source_output_index) == outpoint for i in tx.inputs):
        return False
    owed: dict[bytes, int] = {}
    for address in addresses:
        script = parse_address(address).locking_script()
        owed[script] = owed.get(script, 0) + satoshis
    paid: dict[bytes, int] = {}
    for out in tx.outputs:
        script = out.locking_script.serialize()
        paid[script] = paid.get(script, 0) + out.satoshis
    return all(paid.get(script, 0) >= amount for script, amount in owed.items())
