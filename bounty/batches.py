"""Batched claims on the service side: when a batch bounty's waiting images are claimed, and the claim
step that takes, builds and stores a batch (the pipeline's claim step calls `claim_ready` for a batch bounty).

A batch slot (contracts/batch_slot.py) pays up to K contributors in one claim. The pipeline collects the
bounty's checked submissions and claims when K are waiting or when the oldest has waited the maximum
(`BATCH_MAX_WAIT`, default 60 s), padding the rest of the batch with a copy of an accepted image; the padded
lanes' rewards return to the funder (the operator wallet that funds deploys).

A batch moves in three steps, each safe to repeat after a worker died anywhere:

1. take (`take_batch`), under a lock on the bounty's row: `decide` on the waiting (checked, not held, in
   no batch) submissions, reserve one free batch slot by a conditional update, and point the members at
   it (`Submission.batch_slot`), all in one transaction: two workers never take the same submission or slot;
2. build (`chain.build_batch`): the off-chain check on every member first (the integer reference, which the
   script follows bit for bit), offenders rejected and left out, so one bad image never costs the others
   their payout; the claim is verified before it is returned;
3. store (`store_batch`): the claim row and every paid member moved to "verified" with its output index,
   in one transaction of conditional updates, before anything is broadcast.

A worker killed after step 1 leaves a reserved slot with checked members: once that slot has waited
STUCK_AFTER seconds any later claim step of the bounty (the sweeper's, or a requeued submission's) builds
and stores it (`claim_ready`). After step 3 the members are "verified" like a single claim's submission,
and the broadcast step and the sweeper finish them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bounty import chain
from bounty.claims import store_claim
from bounty.faults import fault_point
from bounty.models import Bounty, Reason, Slot, Submission
from bounty.payouts import TryLater
from bounty.screening import hold_reason

log = logging.getLogger(__name__)

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


# -- the claim step of a batch bounty -------------------------------------------------------------------


# A checked submission waits unless its batch slot is reserved for its batch: one pointing at a slot that
# was given back or lost since is waiting again.
UNBATCHED = Q(batch_slot__isnull=True) | ~Q(batch_slot__state=Slot.State.RESERVED)


def waiting(bounty: Bounty) -> list[WaitingImage]:
    """The bounty's submissions waiting for a batch: checked (held ones are "held"), in no batch yet."""
    rows = Submission.objects.filter(UNBATCHED, bounty=bounty, state=Submission.State.CHECKED).values_list(
        "pk", "checked_at", "updated"
    )
    return [WaitingImage(pk, checked_at or updated) for pk, checked_at, updated in rows]


def decision_for(bounty: Bounty, now: datetime | None = None) -> BatchDecision:
    """What `decide` says about the bounty's waiting submissions now (the status page reads it too)."""
    return decide(waiting(bounty), bounty.lanes, now or timezone.now())


def claim_ready(bounty: Bounty) -> list[tuple[int, ...]]:
    """Build and store every batch of the bounty that is due: first the batches a dead worker took and left
    (reserved more than STUCK_AFTER seconds ago), then new ones while `decide` says claim. Returns each
    stored batch's submission ids, in output order (all "verified" now); TryLater when the chain cannot be
    reached."""
    stored: list[tuple[int, ...]] = []
    cutoff = timezone.now() - timedelta(seconds=settings.STUCK_AFTER)
    left = Slot.objects.filter(
        bounty=bounty, state=Slot.State.RESERVED, updated__lt=cutoff,
        batch_members__state=Submission.State.CHECKED,
    ).distinct()  # fmt: skip
    for slot in left.with_txids():
        stored.append(store_batch(bounty, slot))
    while (taken := take_batch(bounty)) is not None:
        stored.append(store_batch(bounty, taken))
    return [batch for batch in stored if batch]


def take_batch(bounty: Bounty) -> Slot | None:
    """Step 1: reserve a batch slot for the submissions `decide` says to claim now, and point them at it;
    None when nothing is due (or nothing can be paid: those submissions are then rejected, as a single
    claim's is when its bounty is closed or spent)."""
    with transaction.atomic():
        # The lock on the bounty's waiting set: a second worker waits here, then finds these taken.
        locked = Bounty.objects.select_for_update().get(pk=bounty.pk)
        decision = decision_for(locked)
        if decision.action is BatchAction.WAIT:
            return None
        members = []
        for submission in Submission.objects.filter(pk__in=decision.members).order_by("checked_at", "pk"):
            hold = hold_reason(submission, locked)
            if hold is not None:
                submission.advance(Submission.State.HELD, hold=hold)  # a reviewer (or the window) first
            else:
                members.append(submission)
        if not members:
            return None
        slot = Slot.reserve(locked, members[0].pk) if locked.is_open() else None
        if slot is None:
            reason = Reason.EXHAUSTED if locked.is_open() or locked.state == Bounty.State.EXHAUSTED else None
            locked.mark_exhausted_if_spent()
            for submission in members:
                submission.reject(reason or Reason.CLOSED)
            return None
        Submission.objects.filter(
            UNBATCHED, pk__in=[m.pk for m in members], state=Submission.State.CHECKED
        ).update(batch_slot=slot)
    fault_point("slot_reserved")
    return Slot.objects.with_txids().get(pk=slot.pk)


def store_batch(bounty: Bounty, slot: Slot) -> tuple[int, ...]:
    """Steps 2 and 3 for a taken batch slot: build the claim of its checked members (at most K, oldest
    first; offenders rejected and left out) and store it with every paid member "verified", before any
    broadcast. Returns the paid members' ids (empty when another worker stored it first or nobody is left)."""
    members = list(
        Submission.objects.filter(batch_slot=slot, state=Submission.State.CHECKED).order_by(
            "checked_at", "pk"
        )
    )
    extra = members[slot.lanes :]
    if extra:  # never more than K: the rest wait for the next batch
        Submission.objects.filter(pk__in=[m.pk for m in extra]).update(batch_slot=None)
        members = members[: slot.lanes]
    if not members:
        release_if_unused(slot)
        return ()
    entries = [chain.BatchMember(m.pk, m.pixel_bytes, m.payout_address) for m in members]
    try:
        result = chain.build_batch(bounty, slot, entries, chain.operator_address())
    except chain.ChainError as error:
        if not error.permanent:
            raise TryLater(str(error)) from error
        log.warning("batch claim from slot %s failed for good: %s", slot, error)
        for member in members:
            member.reject(Reason.CHAIN_REJECTED, str(error))
        release_if_unused(slot)
        return ()
    by_pk = {m.pk: m for m in members}
    # The slot is held for the first paid member before any member is rejected, so the sweeper never
    # takes it for an orphan (a reserved slot whose holder was rejected).
    if result.paid:
        Slot.objects.filter(pk=slot.pk, state=Slot.State.RESERVED).update(
            submission_id=result.paid[0], updated=timezone.now()
        )
    for pk in result.excluded:
        refuse(by_pk[pk], "the off-chain check before its batch was built")
    if result.built is None:
        release_if_unused(slot)
        return ()
    built = result.built
    paid = [e for e in entries if e.submission_id in result.paid]

    def rebuild(lock_time: int) -> chain.Built:
        again = chain.build_batch(bounty, slot, paid, chain.operator_address(), lock_time=lock_time).built
        if again is None:  # the same members as the first build, which the same model read the same way
            raise chain.ChainError("a batch claim built again paid nobody", permanent=True)
        return again

    with transaction.atomic():
        tx = store_claim(bounty, built, rebuild)
        if not Slot.objects.filter(pk=slot.pk, state=Slot.State.RESERVED).exists():
            return ()  # given back meanwhile: its members are waiting again (UNBATCHED)
        for index, pk in enumerate(result.paid):
            if not by_pk[pk].advance(Submission.State.VERIFIED, claim_tx=tx, claim_output=index):
                transaction.set_rollback(True)  # another worker stored this batch (or moved a member)
                return ()
    fault_point("claim_stored")
    return result.paid


def refuse(submission: Submission, why: str) -> None:
    """A member the script would refuse: rejected as the wrong digit, out of its batch."""
    detail = f"classified as another digit by {why}"
    if submission.reject(Reason.WRONG_DIGIT, detail):
        Submission.objects.filter(pk=submission.pk).update(batch_slot=None)


def release_if_unused(slot: Slot) -> None:
    """Give a taken batch slot back when no member of it has a stored claim (none verified or later)."""
    busy = Submission.objects.filter(batch_slot=slot).exclude(
        state__in=(Submission.State.CHECKED, Submission.State.REJECTED)
    )
    if not busy.exists() and not Slot.objects.filter(pk=slot.pk, spent_by__isnull=False).exists():
        Submission.objects.filter(batch_slot=slot, state=Submission.State.CHECKED).update(batch_slot=None)
        slot.release()
