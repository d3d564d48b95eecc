"""Batched claims, the service's part that needs no database: when a bounty's waiting images are claimed,
building the claim with the off-chain check first, and reading who a batch claim pays.

A batch slot (contracts/batch_slot.py) pays up to K contributors in one claim. The pipeline collects the
bounty's checked submissions and claims when K are waiting or when the oldest has waited the maximum
(`BATCH_MAX_WAIT`, default 60 s), padding the rest of the batch with a copy of an accepted image; the padded
lanes' rewards return to the funder. Everything here works on plain values, so the pipeline can call it
inside its own transactions, and a worker that dies between these steps leaves nothing half done:
`decide` only reads, `build_batch` only builds and verifies.

One bad image never costs the others their payout: `build_batch` runs the off-chain check (the integer
reference, which the script follows bit for bit) on every member before the batch is built, and leaves the
offenders out; only the others are packed, signed and paid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import numpy as np
from django.conf import settings

from contracts.address import parse_address
from contracts.batch_slot import BatchSlotContract
from contracts.batch_transactions import BatchClaimEntry, build_batch_claim
from contracts.chain import Utxo
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.model import IntegerModel
from contracts.transactions import BuiltTransaction
from contracts.txverify import parse_transaction

DEFAULT_MAX_WAIT = timedelta(seconds=60)


def max_wait() -> timedelta:
    """The longest an accepted image waits for its batch to fill (settings.BATCH_MAX_WAIT, in seconds)."""
    return timedelta(seconds=getattr(settings, "BATCH_MAX_WAIT", DEFAULT_MAX_WAIT.total_seconds()))


class BatchAction(Enum):
    WAIT = "wait"  # fewer than K waiting and the oldest has not waited the maximum yet
    CLAIM = "claim"  # claim `members` now (a full batch, or a padded one after the maximum wait)


@dataclass(frozen=True)
class WaitingImage:
    """A checked submission of the bounty, waiting for a batch."""

    submission_id: int
    checked_at: datetime


@dataclass(frozen=True)
class BatchDecision:
    action: BatchAction
    members: tuple[int, ...]  # submission ids to claim now, oldest first (empty when waiting)
    missing: int  # images a full batch still lacks
    wait_seconds: int  # at most this long before the waiting images are claimed in a padded batch

    def status(self) -> str:
        """What the status page says to a contributor whose image waits for its batch."""
        if self.action is BatchAction.CLAIM:
            return "being paid in a batch"
        images = "image" if self.missing == 1 else "images"
        return f"waiting for {self.missing} more {images} or at most {self.wait_seconds} seconds"


def decide(
    waiting: Sequence[WaitingImage], lanes: int, now: datetime, wait: timedelta | None = None
) -> BatchDecision:
    """Claim the K oldest when K are waiting; claim all of them (padded) once the oldest has waited `wait`
    (default: `max_wait()`); otherwise wait, saying how many images are missing and for how long at most."""
    if lanes < 1:
        raise ValueError(f"a batch holds at least one image, got {lanes}")
    wait = max_wait() if wait is None else wait
    ordered = sorted(waiting, key=lambda image: (image.checked_at, image.submission_id))
    if len(ordered) >= lanes:
        return BatchDecision(BatchAction.CLAIM, tuple(i.submission_id for i in ordered[:lanes]), 0, 0)
    if not ordered:
        return BatchDecision(BatchAction.WAIT, (), lanes, math.ceil(wait.total_seconds()))
    left = ordered[0].checked_at + wait - now
    if left <= timedelta(0):
        return BatchDecision(
            BatchAction.CLAIM, tuple(i.submission_id for i in ordered), lanes - len(ordered), 0
        )
    return BatchDecision(BatchAction.WAIT, (), lanes - len(ordered), math.ceil(left.total_seconds()))


@dataclass(frozen=True)
class BatchMember:
    submission_id: int
    pixels: np.ndarray  # (784,) uint8
    payout_address: str


@dataclass(frozen=True)
class BatchBuild:
    """A built and verified batch claim (None when no member passed the off-chain check)."""

    built: BuiltTransaction | None
    paid: tuple[int, ...]  # submission ids; output i pays paid[i]
    excluded: tuple[int, ...]  # members the off-chain check refused: left out, never in the claim


def build_batch(
    contract: BatchSlotContract,
    slot: Utxo,
    members: Sequence[BatchMember],
    operator: Key,
    model: IntegerModel,
    *,
    reward: int,
    fee_rate: FeeRate,
    change_address: str,
    network: str | None = None,
) -> BatchBuild:
    """The batch claim of `members` (1..K, oldest first) from `slot`, after the off-chain check.

    Members the reference model does not classify as the contract's digit are excluded before anything is
    packed, so the script accepts the rest (it computes the same integers); the padded lanes' rewards and
    the unneeded reserved fee go to `change_address`. Raises what `build_batch_claim` raises (ImageError,
    AddressError, VerificationError, ValueError) for a batch that cannot be paid."""
    if not 1 <= len(members) <= contract.lanes:
        raise ValueError(f"a batch of {contract.lanes} takes 1..{contract.lanes} members, got {len(members)}")
    verdicts = [model.predict(np.asarray(m.pixels)) == contract.digit for m in members]
    accepted = [m for m, ok in zip(members, verdicts, strict=True) if ok]
    excluded = tuple(m.submission_id for m, ok in zip(members, verdicts, strict=True) if not ok)
    if not accepted:
        return BatchBuild(None, (), excluded)
    entries = [BatchClaimEntry(np.asarray(m.pixels), m.payout_address) for m in accepted]
    built = build_batch_claim(
        slot, contract, entries, operator, reward=reward, fee_rate=fee_rate, change_address=change_address,
        network=network,
    )  # fmt: skip
    return BatchBuild(built, tuple(m.submission_id for m in accepted), excluded)


def pays_every_member(raw: bytes, members: Sequence[BatchMember], reward: int) -> bool:
    """Whether transaction `raw` pays each member's address at least `reward` (counting a shared address
    once per member): a claim holding the batch slot that does is the batch's payment, whoever built it
    (a copy with other image pushes pays the same outputs, since the signature covers them)."""
    tx = parse_transaction(raw)
    owed: dict[bytes, int] = {}
    for member in members:
        script = parse_address(member.payout_address).locking_script()
        owed[script] = owed.get(script, 0) + reward
    paid: dict[bytes, int] = {}
    for out in tx.outputs:
        script = out.locking_script.serialize()
        paid[script] = paid.get(script, 0) + out.satoshis
    return all(paid.get(script, 0) >= amount for script, amount in owed.items())
