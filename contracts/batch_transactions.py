"""The batch claim: one transaction spends a batch slot and pays up to K contributors.

    inputs:  the batch slot, unlocked by `<operator sig> <K lane-packed images> OP_1`
    outputs: one P2PKH output of `reward` per contributor (in batch order), then one change output with
             the padded lanes' rewards (a partly filled batch) and whatever of the reserved fee the actual
             size does not need (when a change address is given and that is worth an output)

A partly filled batch is padded with copies of an already accepted image (the batch's first one, unless
`padding` says otherwise), so the predicate still sees K accepted images; nobody is paid for a copy. The
padded lanes' money goes back to the funder's address: one P2PKH output (34 bytes) instead of a fresh
single slot of the same bounty (an output carrying the whole ~17.5 KB single predicate, which at 100 sat/kB
costs about as much as a small reward); `benchmarks/chain.py --batch K` measures both.

The operator's signature is SIGHASH_ALL|FORKID: it commits to every output, so no payee can be swapped,
dropped or redirected after signing. Like every builder, `build_batch_claim` returns a transaction only
after `contracts.txverify.verify_transaction` accepted it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from bsv import Transaction
from bsv.script.script import Script

from contracts.address import parse_address
from contracts.batch_slot import BatchSlotContract
from contracts.chain import Utxo
from contracts.errors import ImageError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.transactions import (
    DUST,
    TX_VERSION,
    BuiltTransaction,
    finish,
    signature,
    unsigned_input,
)
from contracts.txverify import output
from contracts.wire import MAX_SIGNATURE_PUSH, P2PKH_SCRIPT_BYTES, output_bytes, tx_bytes


@dataclass(frozen=True)
class BatchClaimEntry:
    """One contributor of a batch: the image that earned the reward and where to pay it."""

    pixels: np.ndarray
    payout_address: str


def batch_images(
    contract: BatchSlotContract, entries: Sequence[BatchClaimEntry], padding: np.ndarray | None = None
) -> np.ndarray:
    """The K images of the claim: the entries' images, then copies of `padding` (default: the first entry's
    image, already accepted) for the lanes nobody fills. ImageError for a wrong count or a bad image."""
    if not 1 <= len(entries) <= contract.lanes:
        raise ImageError(
            f"a batch of {contract.lanes} pays 1..{contract.lanes} contributors, got {len(entries)}"
        )
    filler = entries[0].pixels if padding is None else padding
    images = [entry.pixels for entry in entries] + [filler] * (contract.lanes - len(entries))
    shapes = {np.asarray(image).shape for image in images}
    if len(shapes) != 1:
        raise ImageError(f"the batch's images have different shapes: {sorted(shapes)}")
    return contract.compiled.layout.check_images(np.stack([np.asarray(image) for image in images]))


def assemble_batch_claim(
    slot: Utxo,
    contract: BatchSlotContract,
    entries: Sequence[BatchClaimEntry],
    operator: Key,
    *,
    reward: int,
    fee_rate: FeeRate,
    change_script: bytes | None = None,
    padding: np.ndarray | None = None,
    network: str | None = None,
    lock_time: int = 0,
) -> Transaction:
    """The signed batch claim, NOT verified: use `build_batch_claim` (exposed so tests can show that the
    ledger refuses what the builder would have refused)."""
    if reward < 1:
        raise ValueError(f"a reward must be at least 1 sat, got {reward}")
    images = batch_images(contract, entries, padding)
    payees = [parse_address(entry.payout_address, network).locking_script() for entry in entries]
    outputs = [output(script, reward) for script in payees]
    padded = contract.lanes - len(entries)
    if padded and change_script is None:
        raise ValueError(f"{padded} padded lane(s): their rewards need a change script (the funder's)")
    if change_script is not None:
        # The slot reserved the fee of the worst case (every pixel 255 in every lane); what the actual
        # size does not need goes back with the padded lanes' rewards, when it is worth its own output.
        unlocking_bound = MAX_SIGNATURE_PUSH + len(contract.compiled.pushes(images)) + 1
        size = tx_bytes([unlocking_bound], [P2PKH_SCRIPT_BYTES] * len(payees) + [len(change_script)])
        change = slot.satoshis - reward * len(payees) - fee_rate.fee_for(size)
        if change >= max(DUST, fee_rate.fee_for(output_bytes(len(change_script))) + 1):
            outputs.append(output(change_script, change))
    if slot.satoshis - sum(out.satoshis for out in outputs) < 0:
        raise ValueError(
            f"slot {slot.txid}:{slot.vout} holds {slot.satoshis} sat, less than {len(payees)} x {reward} sat"
        )
    tx = Transaction([unsigned_input(slot)], outputs, version=TX_VERSION, locktime=lock_time)
    operator_signature = signature(tx, 0, operator)
    tx.inputs[0].unlocking_script = Script(contract.claim_unlocking(operator_signature, images))
    return tx


def build_batch_claim(
    slot: Utxo,
    contract: BatchSlotContract,
    entries: Sequence[BatchClaimEntry],
    operator: Key,
    *,
    reward: int,
    fee_rate: FeeRate,
    change_address: str | None = None,
    change_script: bytes | None = None,
    padding: np.ndarray | None = None,
    network: str | None = None,
    policy: Policy = DEFAULT_POLICY,
    lock_time: int = 0,
) -> BuiltTransaction:
    """Spend the batch `slot`, paying `reward` to each entry's address (1..K entries); the padded lanes'
    rewards and the unneeded part of the reserved fee go to `change_address` (the funder's P2PKH;
    `change_script` for any other script). A partly filled batch needs one; a full one without it leaves
    the whole reserved fee to the miner.

    Raises ImageError for a malformed image or a wrong count, AddressError for a bad address, ValueError
    when the slot cannot pay, and VerificationError when the script refuses the batch (an image that is
    not the contract's digit): nothing is returned then."""
    if change_address is not None and change_script is not None:
        raise ValueError("give a change address or a change script, not both")
    if change_address is not None:
        change_script = parse_address(change_address, network).locking_script()
    tx = assemble_batch_claim(
        slot, contract, entries, operator, reward=reward, fee_rate=fee_rate, change_script=change_script,
        padding=padding, network=network, lock_time=lock_time,
    )  # fmt: skip
    return finish("claim", tx, [slot], fee_rate, policy=policy)
