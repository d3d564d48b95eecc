"""Refunds signed off the server: what the service prepares, what the admin signs, how the result comes back.

When the admin key is kept off the server (ADMIN_KEY unset), the service still knows everything but the
signatures: which free slots a bounty has, their locking script (compiled from the public keys stored on the
bounty) and the refund transaction to build. For each input it shows the BIP143 sighash preimage; the admin
signs it offline with SIGHASH_ALL|FORKID (`contracts.keys.Key.sign_preimage`) and pastes the signatures
back. The refund is `chain.prepare_refund` (contracts' `UnsignedRefund`), the same one the admin key on the
server signs at once; `chain.sign_refund` puts the signatures in place (`<signature> OP_0`, the admin branch)
and verifies the whole transaction with the interpreter; it is then stored and broadcast like any refund.

Migrations of a redeployment wait the same way (`bounty.retraining.redeploy`: a step in the signing state);
they share `inputs_to_sign`, `parse_signatures` and the page's table of preimages with refunds.

A digest says nothing a person can check, so every transaction to sign comes with its outputs in words
(address, satoshis, which bounty: `outputs_in_words`) and the hashOutputs its preimages commit to, checked
here against those outputs (`TransactionToSign`); the exported signing request (`refund_request`,
`migration_request`) carries the same, with the unsigned transaction to decode offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bounty import chain
from bounty.models import Bounty, Slot, Transaction
from bounty.payouts import TryLater, send


class SigningError(Exception):
    """The refund cannot be prepared or the pasted signatures do not make a valid transaction."""


@dataclass(frozen=True)
class InputToSign:
    index: int
    outpoint: str
    satoshis: int
    preimage: str  # hex: sign hash256 of this with SIGHASH_ALL|FORKID (0x41)
    digest: str  # hex of hash256(preimage), for signers that take a digest


@dataclass(frozen=True)
class OutputToPay:
    """One output of a transaction to sign, as a person reads it."""

    index: int
    address: str  # the P2PKH address paid, or "" for a slot contract (a script, not an address)
    satoshis: int
    bounty_id: int
    what: str  # in words: whose wallet or which bounty's new slot


@dataclass(frozen=True)
class TransactionToSign:
    """One transaction: the inputs the admin signs and the outputs every one of their preimages commits to."""

    inputs: tuple[InputToSign, ...]
    outputs: tuple[OutputToPay, ...]
    hash_outputs: str  # hex; the BIP143 hashOutputs inside each preimage, = hash256 of these outputs
    unsigned_hex: str

    @property
    def total_out(self) -> int:
        return sum(o.satoshis for o in self.outputs)


@dataclass(frozen=True)
class UnsignedRefund:
    """A refund waiting for the admin's signatures, as the page and the signing request show it; `unsigned`
    is the transaction itself (`chain.UnsignedRefund`), rebuilt the same from the same free slots."""

    bounty_id: int
    slot_ids: tuple[int, ...]
    to_address: str
    fee: int
    amount: int
    unsigned_hex: str
    inputs: tuple[InputToSign, ...]
    admin_pubkey: str
    transaction: TransactionToSign

    @property
    def total(self) -> int:
        """What the slots hold: the amount paid plus the fee."""
        return self.amount + self.fee

    @property
    def transactions(self) -> tuple[TransactionToSign, ...]:
        """As a migration lists them: a refund is one transaction."""
        return (self.transaction,)


def refund_address() -> str:
    """The configured refund address: the operator wallet, where the admin's refund action sends unused
    slots (`bounty.funding.refund_unused`). Any other address needs a person's logged confirmation."""
    return chain.operator_address()


def outputs_in_words(
    outputs: Sequence[tuple[bytes, int]], bounty_id: int, slot_words: str = ""
) -> list[OutputToPay]:
    """Each output's address (or `slot_words` for a script that is not an address) and satoshis."""
    wallet = refund_address()
    rows = []
    for index, (script, satoshis) in enumerate(outputs):
        address = chain.address_of_script(script)
        if address is None:
            what = slot_words or "a script that is not an address"
            rows.append(OutputToPay(index, "", satoshis, bounty_id, what))
            continue
        what = "the operator wallet" if address == wallet else "NOT the operator wallet"
        rows.append(OutputToPay(index, address, satoshis, bounty_id, what))
    return rows


def committed_outputs(preimage: bytes) -> bytes:
    """The hashOutputs field of a BIP143 preimage: the 32 bytes before nLockTime and the sighash type."""
    return preimage[-40:-8]


def transaction_to_sign(
    unsigned: chain.UnsignedRefund | chain.UnsignedMigration,
    inputs: Sequence[InputToSign],
    bounty_id: int,
    slot_words: str = "",
) -> TransactionToSign:
    """A transaction's inputs to sign beside its outputs in words, read from the transaction itself, after
    checking that every preimage commits to exactly these outputs: what the page says is paid is what a
    signature allows to be paid."""
    tx = unsigned.transaction()
    hash_outputs = chain.sha256d(b"".join(out.serialize() for out in tx.outputs))
    if any(committed_outputs(bytes.fromhex(row.preimage)) != hash_outputs for row in inputs):
        raise SigningError("a preimage does not commit to the outputs shown: nothing to sign")
    script_outputs = [(out.locking_script.serialize(), out.satoshis) for out in tx.outputs]
    outputs = outputs_in_words(script_outputs, bounty_id, slot_words)
    return TransactionToSign(tuple(inputs), tuple(outputs), hash_outputs.hex(), tx.serialize().hex())


def _unsigned(bounty: Bounty, slots: list[Slot], to_address: str) -> chain.UnsignedRefund:
    if not slots:
        raise SigningError(f"bounty #{bounty.pk} has no free slots to refund")
    problem = chain.address_problem(to_address)
    if problem:
        raise SigningError(problem)
    try:
        return chain.prepare_refund(bounty, slots, to_address)
    except chain.ContractsError as error:
        raise SigningError(f"the free slots cannot pay the refund: {error}") from error


def free_slots(bounty: Bounty, slot_ids: list[int] | None = None) -> list[Slot]:
    slots = Slot.objects.free().filter(bounty=bounty).with_txids()
    if slot_ids is not None:
        slots = slots.filter(pk__in=slot_ids)
    return list(slots.order_by("pk"))


def inputs_to_sign(
    preimages: Sequence[bytes], utxos: Sequence[chain.Utxo], first: int = 0
) -> list[InputToSign]:
    """What the admin signs, one row per input: `preimages[i]` is that of the input spending `utxos[i]`;
    rows are numbered from `first` (a page listing several transactions numbers them in signing order)."""
    return [
        InputToSign(
            first + index, f"{u.txid}:{u.vout}", u.satoshis, preimage.hex(), chain.sha256d(preimage).hex()
        )
        for index, (preimage, u) in enumerate(zip(preimages, utxos, strict=True))
    ]


def parse_signatures(texts: Sequence[str], expected: int) -> list[bytes]:
    """The pasted signatures (hex, one per input, in order) as bytes; SigningError if any is not hex or the
    count is wrong."""
    if len(texts) != expected:
        raise SigningError(f"expected {expected} signature(s), got {len(texts)}")
    try:
        return [bytes.fromhex(text.strip()) for text in texts]
    except ValueError:
        raise SigningError("a signature is not hex") from None


def prepare_refund(bounty: Bounty, to_address: str) -> UnsignedRefund:
    slots = free_slots(bounty)
    unsigned = _unsigned(bounty, slots, to_address)
    inputs = inputs_to_sign(unsigned.admin_preimages(), unsigned.spent)
    return UnsignedRefund(
        bounty_id=bounty.pk,
        slot_ids=tuple(s.pk for s in slots),
        to_address=to_address,
        fee=unsigned.fee,
        amount=unsigned.amount,
        unsigned_hex=unsigned.transaction().serialize().hex(),
        inputs=tuple(inputs),
        admin_pubkey=bounty.admin_pubkey,
        transaction=transaction_to_sign(unsigned, inputs, bounty.pk),
    )


def migration_transactions(
    bounty: Bounty, target_name: str, migrations: Sequence[chain.UnsignedMigration]
) -> list[TransactionToSign]:
    """A migration's transactions as the page shows them; inputs numbered in signing order across all of
    them, as `bounty.retraining.redeploy.to_sign` numbers them."""
    words = f"a new slot of bounty #{bounty.pk}, locked to model {target_name}"
    transactions: list[TransactionToSign] = []
    first = 0
    for unsigned in migrations:
        preimages = unsigned.admin_preimages()
        inputs = inputs_to_sign(preimages, unsigned.spent[: unsigned.admin_inputs], first=first)
        first += len(inputs)
        transactions.append(transaction_to_sign(unsigned, inputs, bounty.pk, words))
    return transactions


def _request(kind: str, bounty: Bounty, transactions: Sequence[TransactionToSign], **extra: Any) -> dict:
    return {
        "kind": kind,
        "network": settings.NETWORK,
        "bounty": bounty.pk,
        "admin_pubkey": bounty.admin_pubkey,
        "sighash": "SIGHASH_ALL|FORKID (0x41)",
        **extra,
        "transactions": [
            {
                "inputs": [{**asdict(i), "bounty": bounty.pk} for i in tx.inputs],
                "outputs": [asdict(o) for o in tx.outputs],
                "hash_outputs": tx.hash_outputs,
                "unsigned_hex": tx.unsigned_hex,
            }
            for tx in transactions
        ],
    }


def refund_request(bounty: Bounty, refund: UnsignedRefund) -> dict:
    """The exported signing request of a refund: what is spent, what is paid to whom, what to sign."""
    return _request(
        "refund", bounty, [refund.transaction], to_address=refund.to_address, total=refund.total,
        fee=refund.fee, amount=refund.amount, slot_ids=list(refund.slot_ids),
    )  # fmt: skip


def migration_request(
    bounty: Bounty, step_id: int, target_name: str, transactions: Sequence[TransactionToSign], fee: int
) -> dict:
    """The exported signing request of a migration step, in the page's signing order."""
    return _request("migration", bounty, transactions, migration_step=step_id, to_model=target_name, fee=fee)


def submit_signed_refund(
    bounty: Bounty, slot_ids: list[int], to_address: str, signatures: list[str]
) -> Transaction:
    """Assemble, verify, store and broadcast the refund the admin signed; the slots become refunded."""
    slots = free_slots(bounty, slot_ids)
    if [s.pk for s in slots] != sorted(slot_ids):
        raise SigningError("some of these slots are no longer free: prepare the refund again")
    parsed = parse_signatures(signatures, len(slots))
    unsigned = _unsigned(bounty, slots, to_address)
    try:
        built = chain.sign_refund(bounty, unsigned, parsed)
    except chain.ContractsError as error:
        raise SigningError(f"the signed transaction does not verify: {error}") from error
    with transaction.atomic():
        taken = Slot.objects.filter(pk__in=slot_ids, state=Slot.State.FREE).update(
            state=Slot.State.REFUNDED, updated=timezone.now()
        )
        if taken != len(slot_ids):
            transaction.set_rollback(True)
            raise SigningError("another process took some of these slots: prepare the refund again")
        stored = Transaction.objects.create(
            txid=built.txid, raw_hex=built.raw_hex, kind=Transaction.Kind.REFUND, bounty=bounty, fee=built.fee
        )
        Slot.objects.filter(pk__in=slot_ids).update(spent_by=stored)
        Bounty.objects.filter(pk=bounty.pk).exclude(state=Bounty.State.DRAFT).update(
            state=Bounty.State.REFUNDED
        )
    try:
        if not send(stored):
            Slot.objects.filter(pk__in=slot_ids).update(state=Slot.State.FREE, spent_by=None)
            raise SigningError(f"the chain refused the refund: {stored.last_error}")
    except TryLater:
        pass  # stored: the sweeper broadcasts it when the chain is back
    return stored
